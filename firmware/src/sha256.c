// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for the host's challenges; logic only, so it builds for the host too.
#include <string.h>  // memcpy
#include "sha256.h"  // struct sha256_context, struct hmac_sha256_context, SHA256_*

// The constants live in flash on the AVR (256 + 32 bytes of RAM saved); on the host they are ordinary constants.
#ifdef __AVR__
#include <avr/pgmspace.h>  // PROGMEM, pgm_read_dword
#define IN_FLASH PROGMEM
#define read_flash_word(address) pgm_read_dword(address)
#else
#define IN_FLASH
#define read_flash_word(address) (*(address))
#endif

// FIPS 180-4 §5.3.3: the first 32 bits of the fractional parts of the square roots of the first 8 primes.
static const uint32_t initial_state[8] IN_FLASH = {
  0x6a09e667UL, 0xbb67ae85UL, 0x3c6ef372UL, 0xa54ff53aUL, 0x510e527fUL, 0x9b05688cUL, 0x1f83d9abUL, 0x5be0cd19UL,
};

// FIPS 180-4 §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
static const uint32_t round_constants[64] IN_FLASH = {
  0x428a2f98UL, 0x71374491UL, 0xb5c0fbcfUL, 0xe9b5dba5UL, 0x3956c25bUL, 0x59f111f1UL, 0x923f82a4UL, 0xab1c5ed5UL,
  0xd807aa98UL, 0x12835b01UL, 0x243185beUL, 0x550c7dc3UL, 0x72be5d74UL, 0x80deb1feUL, 0x9bdc06a7UL, 0xc19bf174UL,
  0xe49b69c1UL, 0xefbe4786UL, 0x0fc19dc6UL, 0x240ca1ccUL, 0x2de92c6fUL, 0x4a7484aaUL, 0x5cb0a9dcUL, 0x76f988daUL,
  0x983e5152UL, 0xa831c66dUL, 0xb00327c8UL, 0xbf597fc7UL, 0xc6e00bf3UL, 0xd5a79147UL, 0x06ca6351UL, 0x14292967UL,
  0x27b70a85UL, 0x2e1b2138UL, 0x4d2c6dfcUL, 0x53380d13UL, 0x650a7354UL, 0x766a0abbUL, 0x81c2c92eUL, 0x92722c85UL,
  0xa2bfe8a1UL, 0xa81a664bUL, 0xc24b8b70UL, 0xc76c51a3UL, 0xd192e819UL, 0xd6990624UL, 0xf40e3585UL, 0x106aa070UL,
  0x19a4c116UL, 0x1e376c08UL, 0x2748774cUL, 0x34b0bcb5UL, 0x391c0cb3UL, 0x4ed8aa4aUL, 0x5b9cca4fUL, 0x682e6ff3UL,
  0x748f82eeUL, 0x78a5636fUL, 0x84c87814UL, 0x8cc70208UL, 0x90befffaUL, 0xa4506cebUL, 0xbef9a3f7UL, 0xc67178f2UL,
};

// On the AVR a rotation by whole bytes is register moves and a one-bit rotation is six instructions, while avr-gcc makes
// any other rotation two shift loops of 32 passes in all (224 cycles). So it is done as the nearest whole-byte rotation,
// then at most four one-bit steps right or left. Always inlined: `bits` is a constant and all but the needed steps fold away.
static inline __attribute__((always_inline)) uint32_t rotate_right(uint32_t x, uint8_t bits) {
  uint8_t whole_bytes = (uint8_t)((bits + 4) / 8);
  if (whole_bytes & 1) x = (x >> 8) | (x << 24);
  if (whole_bytes & 2) x = (x >> 16) | (x << 16);
  for (int8_t rest = (int8_t)(bits - 8 * whole_bytes); rest > 0; rest--) x = (x >> 1) | (x << 31);
  for (int8_t rest = (int8_t)(bits - 8 * whole_bytes); rest < 0; rest++) x = (x << 1) | (x >> 31);
  return x;
}

// FIPS 180-4 §4.1.2 (4.2)–(4.7).
static uint32_t choose(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
static uint32_t majority(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
static uint32_t big_sigma0(uint32_t x) { return rotate_right(x, 2) ^ rotate_right(x, 13) ^ rotate_right(x, 22); }
static uint32_t big_sigma1(uint32_t x) { return rotate_right(x, 6) ^ rotate_right(x, 11) ^ rotate_right(x, 25); }
static uint32_t small_sigma0(uint32_t x) { return rotate_right(x, 7) ^ rotate_right(x, 18) ^ (x >> 3); }
static uint32_t small_sigma1(uint32_t x) { return rotate_right(x, 17) ^ rotate_right(x, 19) ^ (x >> 10); }

static uint32_t load_big_endian(const uint8_t *bytes) {
  return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 | bytes[3];
}

static void store_big_endian(uint8_t *bytes, uint32_t word) {
  bytes[0] = (uint8_t)(word >> 24);
  bytes[1] = (uint8_t)(word >> 16);
  bytes[2] = (uint8_t)(word >> 8);
  bytes[3] = (uint8_t)word;
}

// Clears memory that held key-derived data; the volatile writes keep the compiler from dropping the stores.
static void wipe(void *memory, size_t length) {
  volatile uint8_t *byte = memory;
  while (length--) *byte++ = 0;
}

// FIPS 180-4 §6.2.2 on the full block. The schedule is kept as 16 words in the block itself: word t (t >= 16) replaces
// word t - 16, the last one that needed it. The working variables a..h do not move down a place each round ("h = g,
// g = f, ..."): their names move instead, a being working[-t & 7] in round t, so only the new a and e are written.
static void compress(struct sha256_context *context) {
  uint32_t *schedule = context->block.words;
  for (uint8_t i = 0; i < 16; i++) schedule[i] = load_big_endian(&context->block.bytes[4 * i]);
  uint32_t working[8];
  memcpy(working, context->state, sizeof working);
  for (uint8_t round = 0; round < 64; round++) {
#define VARIABLE(index) working[((index) - round) & 7]  // 0 is a, 7 is h, in this round
    uint32_t *word = &schedule[round & 15];
    if (round >= 16) {
      *word += small_sigma1(schedule[(round - 2) & 15]) + schedule[(round - 7) & 15] +
               small_sigma0(schedule[(round - 15) & 15]);
    }
    uint32_t e = VARIABLE(4);
    uint32_t t1 = VARIABLE(7) + big_sigma1(e) + choose(e, VARIABLE(5), VARIABLE(6)) +
                  read_flash_word(&round_constants[round]) + *word;
    uint32_t a = VARIABLE(0);
    uint32_t t2 = big_sigma0(a) + majority(a, VARIABLE(1), VARIABLE(2));
    VARIABLE(3) += t1;      // d + t1: next round's e
    VARIABLE(7) = t1 + t2;  // where h was: next round's a
#undef VARIABLE
  }
  for (uint8_t i = 0; i < 8; i++) context->state[i] += working[i];  // 64 rounds: the names are back in place
}

void sha256_init(struct sha256_context *context) {
  for (uint8_t i = 0; i < 8; i++) context->state[i] = read_flash_word(&initial_state[i]);
  context->length_bytes = 0;
  context->block_used = 0;
}

void sha256_update(struct sha256_context *context, const uint8_t *data, size_t length) {
  context->length_bytes += (uint32_t)length;
  while (length--) {
    context->block.bytes[context->block_used++] = *data++;
    if (context->block_used == SHA256_BLOCK_BYTES) {
      compress(context);
      context->block_used = 0;
    }
  }
}

// FIPS 180-4 §5.1.1: a 1 bit, zeros, then the length in bits as 64 bits big-endian, ending on a block boundary.
void sha256_final(struct sha256_context *context, uint8_t digest[SHA256_DIGEST_BYTES]) {
  uint8_t *block = context->block.bytes;
  uint8_t used = context->block_used;
  block[used++] = 0x80;
  if (used > SHA256_BLOCK_BYTES - 8) {
    while (used < SHA256_BLOCK_BYTES) block[used++] = 0;
    compress(context);
    used = 0;
  }
  while (used < SHA256_BLOCK_BYTES - 8) block[used++] = 0;
  store_big_endian(&block[SHA256_BLOCK_BYTES - 8], context->length_bytes >> 29);
  store_big_endian(&block[SHA256_BLOCK_BYTES - 4], context->length_bytes << 3);
  compress(context);
  for (uint8_t i = 0; i < 8; i++) store_big_endian(&digest[4 * i], context->state[i]);
}

// RFC 2104: a hash started on the key, zero-padded to a block, XORed with the pad byte.
static void start_with_key_block(struct sha256_context *context, const uint8_t *key, uint8_t key_length, uint8_t pad) {
  sha256_init(context);
  for (uint8_t i = 0; i < SHA256_BLOCK_BYTES; i++) context->block.bytes[i] = (uint8_t)((i < key_length ? key[i] : 0) ^ pad);
  compress(context);
  context->length_bytes = SHA256_BLOCK_BYTES;
}

void hmac_sha256_init(struct hmac_sha256_context *context, const uint8_t *key, size_t key_length) {
  uint8_t hashed_key[SHA256_DIGEST_BYTES];
  if (key_length > SHA256_BLOCK_BYTES) {
    sha256_init(&context->inner);
    sha256_update(&context->inner, key, key_length);
    sha256_final(&context->inner, hashed_key);
    key = hashed_key;
    key_length = sizeof hashed_key;
  }
  start_with_key_block(&context->inner, key, (uint8_t)key_length, 0x5c);
  memcpy(context->outer_state, context->inner.state, sizeof context->outer_state);
  start_with_key_block(&context->inner, key, (uint8_t)key_length, 0x36);
  wipe(hashed_key, sizeof hashed_key);
}

void hmac_sha256_update(struct hmac_sha256_context *context, const uint8_t *data, size_t length) {
  sha256_update(&context->inner, data, length);
}

void hmac_sha256_final(struct hmac_sha256_context *context, uint8_t mac[SHA256_DIGEST_BYTES]) {
  sha256_final(&context->inner, mac);  // the inner digest, for now
  // The outer hash resumes after its key block, on the inner digest.
  memcpy(context->inner.state, context->outer_state, sizeof context->outer_state);
  context->inner.length_bytes = SHA256_BLOCK_BYTES;
  context->inner.block_used = 0;
  sha256_update(&context->inner, mac, SHA256_DIGEST_BYTES);
  sha256_final(&context->inner, mac);
  wipe(context, sizeof *context);
}

void hmac_sha256(const uint8_t *key, size_t key_length, const uint8_t *message, size_t message_length,
                 uint8_t mac[SHA256_DIGEST_BYTES]) {
  struct hmac_sha256_context context;
  hmac_sha256_init(&context, key, key_length);
  hmac_sha256_update(&context, message, message_length);
  hmac_sha256_final(&context, mac);
}

uint8_t crypto_equal(const uint8_t *a, const uint8_t *b, size_t n) {
  uint8_t difference = 0;
  for (size_t i = 0; i < n; i++) difference |= a[i] ^ b[i];
  // Branch-free: 1 only when every XOR was 0.
  return (uint8_t)(1u & ((difference - 1u) >> 8));
}
