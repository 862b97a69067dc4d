// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), streaming, sized for the ATmega328P; and a constant-time compare.
#pragma once
#include <stddef.h> // size_t
#include <stdint.h> // uint8_t, uint32_t

#define SHA256_BLOCK_BYTES 64
#define SHA256_DIGEST_BYTES 32

// One hash in progress: 101 bytes on the AVR. Messages up to 2^32 - 1 bytes (the length is counted in bytes).
struct sha256_context {
  uint32_t state[8];
  uint32_t length_bytes;  // message bytes absorbed so far
  // The block being filled; compression turns it into the message schedule in place, so it needs no second buffer.
  union {
    uint8_t bytes[SHA256_BLOCK_BYTES];
    uint32_t words[SHA256_BLOCK_BYTES / 4];
  } block;
  uint8_t block_used;  // bytes of block.bytes filled
};

// One HMAC in progress (133 bytes on the AVR): the inner hash, and the outer hash's state after the key block (the key
// itself is not kept). A context just after init may be copied and each copy used for one message under that key,
// which saves the two key-block compressions (about half of a short message's cost).
struct hmac_sha256_context {
  struct sha256_context inner;
  uint32_t outer_state[8];
};

void sha256_init(struct sha256_context *context);
void sha256_update(struct sha256_context *context, const uint8_t *data, size_t length);
// Writes the digest; the context must be initialised again before reuse.
void sha256_final(struct sha256_context *context, uint8_t digest[SHA256_DIGEST_BYTES]);

// A key longer than the 64-byte block is hashed first, as RFC 2104 says.
void hmac_sha256_init(struct hmac_sha256_context *context, const uint8_t *key, size_t key_length);
void hmac_sha256_update(struct hmac_sha256_context *context, const uint8_t *data, size_t length);
// Writes the MAC and clears the context, so no key-derived state stays in RAM.
void hmac_sha256_final(struct hmac_sha256_context *context, uint8_t mac[SHA256_DIGEST_BYTES]);
void hmac_sha256(const uint8_t *key, size_t key_length, const uint8_t *message, size_t message_length,
                 uint8_t mac[SHA256_DIGEST_BYTES]);

// 1 if the n bytes at a and b are equal, else 0; reads every byte whatever differs, so the time says nothing about
// where a guessed MAC goes wrong.
uint8_t crypto_equal(const uint8_t *a, const uint8_t *b, size_t n);
