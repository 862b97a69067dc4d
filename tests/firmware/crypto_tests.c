// Tests of the firmware's SHA-256 and HMAC-SHA256 (firmware/src/sha256.c) built for this machine: the published vectors
// (FIPS 180-4 / NIST examples, RFC 4231 cases 1-7), streaming against one-shot at random split points, and the
// constant-time compare. Each case runs in its own forked process. Prints each failure as file:line, then
// `N passed, M failed`.
// As a reference for the host's cross-checks: `--sha256 HEX...` prints each message's digest, `--hmac KEYHEX MSGHEX...`
// each pair's MAC, one lowercase hex line each.
#include <stdio.h>     // printf
#include <string.h>    // strcmp, strlen, memcmp, memset
#include "sha256.h"    // sha256_*, hmac_sha256*, crypto_equal
#include "check.h"     // CHECK, CHECK_EQ, REQUIRE, case_name, passed, failed

// ---- hex ----

static void to_hex(char *out, const uint8_t *bytes, size_t length) {
  for (size_t i = 0; i < length; i++) sprintf(&out[2 * i], "%02x", bytes[i]);
  out[2 * length] = '\0';
}

// The first strlen(expected_hex) / 2 bytes of actual against the expected hex.
static void check_hex(const char *file, int line, const uint8_t *actual, const char *expected_hex) {
  char got[2 * SHA256_DIGEST_BYTES + 1];
  size_t length = strlen(expected_hex) / 2;
  to_hex(got, actual, length);
  if (strcmp(got, expected_hex) != 0) fail_at(file, line, "got %s, expected %s", got, expected_hex);
}
#define CHECK_HEX(actual, expected_hex) check_hex(__FILE__, __LINE__, actual, expected_hex)


// ---- helpers ----

static void sha256_of(const void *message, size_t length, uint8_t digest[SHA256_DIGEST_BYTES]) {
  struct sha256_context context;
  sha256_init(&context);
  sha256_update(&context, message, length);
  sha256_final(&context, digest);
}

// xorshift32: the same random messages and split points every run.
static uint32_t random_state;
static uint32_t random_next(void) {
  random_state ^= random_state << 13;
  random_state ^= random_state >> 17;
  random_state ^= random_state << 5;
  return random_state;
}
static void random_bytes(uint8_t *out, size_t length) {
  for (size_t i = 0; i < length; i++) out[i] = (uint8_t)random_next();
}

// Fills a byte array from hex; returns the byte count, or -1 if the text is not hex.
static long from_hex(uint8_t *out, const char *hex) {
  size_t length = strlen(hex);
  if (length % 2) return -1;
  for (size_t i = 0; i < length / 2; i++) {
    unsigned byte;
    if (sscanf(&hex[2 * i], "%2x", &byte) != 1) return -1;
    out[i] = (uint8_t)byte;
  }
  return (long)(length / 2);
}

// ---- SHA-256: FIPS 180-4 / NIST examples ----

struct hash_vector {
  const char *name;
  const char *message;
  const char *digest_hex;
};

static const struct hash_vector hash_vectors[] = {
  { "\"abc\" (one block)", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
  { "the empty string", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
  { "448 bits (two blocks)", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
  { "896 bits",
    "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
};
#define HASH_VECTOR_COUNT (int)(sizeof hash_vectors / sizeof hash_vectors[0])

static void sha256_vector(int index) {
  const struct hash_vector *vector = &hash_vectors[index];
  uint8_t digest[SHA256_DIGEST_BYTES];
  sha256_of(vector->message, strlen(vector->message), digest);
  CHECK_HEX(digest, vector->digest_hex);
  // The same, a byte per update.
  struct sha256_context context;
  sha256_init(&context);
  for (size_t i = 0; vector->message[i] != '\0'; i++) sha256_update(&context, (const uint8_t *)&vector->message[i], 1);
  sha256_final(&context, digest);
  CHECK_HEX(digest, vector->digest_hex);
}

// One million 'a', in updates of odd sizes (some across block boundaries, some a whole block or more).
static void sha256_million_a(int unused) {
  (void)unused;
  static const size_t sizes[] = { 1, 3, 7, 13, 55, 63, 64, 65, 127, 129, 997 };
  static uint8_t a[1000];
  memset(a, 'a', sizeof a);
  struct sha256_context context;
  sha256_init(&context);
  size_t left = 1000000;
  for (unsigned i = 0; left > 0; i++) {
    size_t size = sizes[i % (sizeof sizes / sizeof sizes[0])];
    if (size > left) size = left;
    sha256_update(&context, a, size);
    left -= size;
  }
  uint8_t digest[SHA256_DIGEST_BYTES];
  sha256_final(&context, digest);
  CHECK_HEX(digest, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Padding at the block boundaries, which the published vectors do not reach (55 bytes: the last length whose padding
// fits its block): n times 'a', digests from Python's hashlib (OpenSSL).
struct boundary_vector {
  size_t length;
  const char *digest_hex;
};

static const struct boundary_vector boundary_vectors[] = {
  { 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318" },
  { 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a" },
  { 57, "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6" },
  { 63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34" },
  { 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb" },
  { 65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0" },
  { 119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb" },
  { 120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c" },
};
#define BOUNDARY_VECTOR_COUNT (int)(sizeof boundary_vectors / sizeof boundary_vectors[0])

static void sha256_boundary(int index) {
  uint8_t message[120];
  memset(message, 'a', sizeof message);
  uint8_t digest[SHA256_DIGEST_BYTES];
  sha256_of(message, boundary_vectors[index].length, digest);
  CHECK_HEX(digest, boundary_vectors[index].digest_hex);
}

// ---- HMAC-SHA256: RFC 4231 test cases 1-7 ----

struct mac_vector {
  const char *key_text;   // the key as text, or NULL for:
  uint8_t key_byte;       // key_length copies of key_byte, or 0x01, 0x02, ... when key_byte is 0
  size_t key_length;
  const char *data;       // text, or NULL for data_length copies of data_byte
  uint8_t data_byte;
  size_t data_length;
  const char *mac_hex;    // case 5: the first 128 bits only, as the RFC gives
};

static const struct mac_vector mac_vectors[] = {
  { NULL, 0x0b, 20, "Hi There", 0, 0, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
  { "Jefe", 0, 0, "what do ya want for nothing?", 0, 0, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
  { NULL, 0xaa, 20, NULL, 0xdd, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
  { NULL, 0, 25, NULL, 0xcd, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
  { NULL, 0x0c, 20, "Test With Truncation", 0, 0, "a3b6167473100ee06e0c796c2955552b" },
  { NULL, 0xaa, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 0, 0,
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
  { NULL, 0xaa, 131,
    "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed "
    "before being used by the HMAC algorithm.",
    0, 0, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
};
#define MAC_VECTOR_COUNT (int)(sizeof mac_vectors / sizeof mac_vectors[0])

// arg: the RFC's case number.
static void hmac_vector(int case_number) {
  const struct mac_vector *vector = &mac_vectors[case_number - 1];
  uint8_t key[131], data[200];
  size_t key_length = vector->key_length, data_length = vector->data_length;
  if (vector->key_text != NULL) {
    key_length = strlen(vector->key_text);
    memcpy(key, vector->key_text, key_length);
  } else {
    for (size_t i = 0; i < key_length; i++) key[i] = vector->key_byte ? vector->key_byte : (uint8_t)(i + 1);
  }
  if (vector->data != NULL) {
    data_length = strlen(vector->data);
    memcpy(data, vector->data, data_length);
  } else {
    memset(data, vector->data_byte, data_length);
  }
  REQUIRE(key_length <= sizeof key && data_length <= sizeof data);
  uint8_t mac[SHA256_DIGEST_BYTES];
  hmac_sha256(key, key_length, data, data_length, mac);
  CHECK_HEX(mac, vector->mac_hex);
  // The same through the streaming calls, a byte per update.
  struct hmac_sha256_context context;
  hmac_sha256_init(&context, key, key_length);
  for (size_t i = 0; i < data_length; i++) hmac_sha256_update(&context, &data[i], 1);
  hmac_sha256_final(&context, mac);
  CHECK_HEX(mac, vector->mac_hex);
}

// Keys of 63, 64 and 65 bytes (0x00, 0x01, ...): only a key longer than the block is hashed first. MACs from Python's
// hmac module.
static void hmac_key_at_block_size(int key_length) {
  static const char *const macs_hex[] = {
    "39a43d790e2753d62c5efd589544c1a3942318c57c2e7627c70dea35e44339a8",
    "87b3a7d67be05f0c68b20964b0ecbb18d115533014d68b1d2b1a5068b97ceac5",
    "e69b8c0315a0d41b7cfa89455f8ce075c5aae8f814f35cb1cf97d5fdeadc9e2d",
  };
  uint8_t key[65];
  for (int i = 0; i < key_length; i++) key[i] = (uint8_t)i;
  static const char message[] = "key length at the block size";
  uint8_t mac[SHA256_DIGEST_BYTES];
  hmac_sha256(key, (size_t)key_length, (const uint8_t *)message, strlen(message), mac);
  CHECK_HEX(mac, macs_hex[key_length - 63]);
}

// ---- streaming equals one-shot ----

#define SPLIT_TRIALS 200

// Random messages (0-300 bytes) fed in random pieces give the one-shot digest; arg seeds the generator.
static void sha256_split_equals_one_shot(int seed) {
  random_state = 0x9e3779b9u ^ (uint32_t)seed * 2654435761u;
  if (random_state == 0) random_state = 1;
  for (int trial = 0; trial < SPLIT_TRIALS; trial++) {
    uint8_t message[300], one_shot[SHA256_DIGEST_BYTES], streamed[SHA256_DIGEST_BYTES];
    size_t length = random_next() % (sizeof message + 1);
    random_bytes(message, length);
    sha256_of(message, length, one_shot);
    struct sha256_context context;
    sha256_init(&context);
    for (size_t at = 0; at < length;) {
      size_t piece = random_next() % (length - at + 1);  // empty updates included
      sha256_update(&context, &message[at], piece);
      at += piece;
    }
    sha256_final(&context, streamed);
    if (memcmp(one_shot, streamed, sizeof one_shot) != 0) fail_at(__FILE__, __LINE__, "trial %d (%zu bytes) differs", trial, length);
  }
}

// The same for HMAC, with random keys of 0-140 bytes (shorter, equal to and longer than a block).
static void hmac_split_equals_one_shot(int seed) {
  random_state = 0x7f4a7c15u ^ (uint32_t)seed * 2246822519u;
  if (random_state == 0) random_state = 1;
  for (int trial = 0; trial < SPLIT_TRIALS; trial++) {
    uint8_t key[140], message[300], one_shot[SHA256_DIGEST_BYTES], streamed[SHA256_DIGEST_BYTES];
    size_t key_length = random_next() % (sizeof key + 1), length = random_next() % (sizeof message + 1);
    random_bytes(key, key_length);
    random_bytes(message, length);
    hmac_sha256(key, key_length, message, length, one_shot);
    struct hmac_sha256_context context;
    hmac_sha256_init(&context, key, key_length);
    for (size_t at = 0; at < length;) {
      size_t piece = random_next() % (length - at + 1);
      hmac_sha256_update(&context, &message[at], piece);
      at += piece;
    }
    hmac_sha256_final(&context, streamed);
    if (memcmp(one_shot, streamed, sizeof one_shot) != 0) {
      fail_at(__FILE__, __LINE__, "trial %d (key %zu bytes, message %zu bytes) differs", trial, key_length, length);
    }
  }
}

// The final call clears the context: no key-derived byte stays behind.
static void hmac_final_clears_context(int unused) {
  (void)unused;
  static const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
  struct hmac_sha256_context context;
  hmac_sha256_init(&context, key, sizeof key);
  hmac_sha256_update(&context, (const uint8_t *)"nonce", 5);
  uint8_t mac[SHA256_DIGEST_BYTES];
  hmac_sha256_final(&context, mac);
  const uint8_t *bytes = (const uint8_t *)&context;
  size_t nonzero = 0;
  for (size_t i = 0; i < sizeof context; i++) nonzero += bytes[i] != 0;
  CHECK_EQ(nonzero, 0);
}

// A context copied just after init serves one message per copy, as the header promises.
static void hmac_keyed_context_copies(int unused) {
  (void)unused;
  static const uint8_t key[32] = { 0x3c, 0x9a, 0x41, 0x07, 0xe2, 0x5d, 0xb8, 0x16 };
  static const char *messages[] = { "first challenge", "", "a third, longer challenge that fills more than one block of sixty-four bytes" };
  struct hmac_sha256_context keyed;
  hmac_sha256_init(&keyed, key, sizeof key);
  for (unsigned i = 0; i < sizeof messages / sizeof messages[0]; i++) {
    struct hmac_sha256_context copy = keyed;
    uint8_t from_copy[SHA256_DIGEST_BYTES], one_shot[SHA256_DIGEST_BYTES];
    hmac_sha256_update(&copy, (const uint8_t *)messages[i], strlen(messages[i]));
    hmac_sha256_final(&copy, from_copy);
    hmac_sha256(key, sizeof key, (const uint8_t *)messages[i], strlen(messages[i]), one_shot);
    if (memcmp(from_copy, one_shot, sizeof one_shot) != 0) fail_at(__FILE__, __LINE__, "message %u differs", i);
  }
}

// ---- crypto_equal ----

static const uint8_t reference[32] = {
  0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
  0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
};

static void equal_when_equal(int unused) {
  (void)unused;
  uint8_t copy[32];
  memcpy(copy, reference, sizeof copy);
  CHECK_EQ(crypto_equal(reference, copy, 32), 1);
  CHECK_EQ(crypto_equal(reference, reference, 32), 1);
  CHECK_EQ(crypto_equal(reference, copy, 0), 1);  // nothing to differ
  uint8_t zeros[32] = { 0 }, ones[32];
  memset(ones, 0xff, sizeof ones);
  CHECK_EQ(crypto_equal(zeros, zeros, 32), 1);
  CHECK_EQ(crypto_equal(ones, ones, 32), 1);
  CHECK_EQ(crypto_equal(zeros, ones, 32), 0);
}

// Every single-bit difference in byte `index` (the last byte among them) makes the compare fail.
static void unequal_in_byte(int index) {
  for (int bit = 0; bit < 8; bit++) {
    uint8_t copy[32];
    memcpy(copy, reference, sizeof copy);
    copy[index] ^= (uint8_t)(1 << bit);
    if (crypto_equal(reference, copy, 32) != 0) fail_at(__FILE__, __LINE__, "bit %d of byte %d not seen", bit, index);
    if (crypto_equal(copy, reference, 32) != 0) fail_at(__FILE__, __LINE__, "bit %d of byte %d not seen (swapped)", bit, index);
  }
  // A difference beyond n is not compared.
  uint8_t copy[32];
  memcpy(copy, reference, sizeof copy);
  copy[index] ^= 0xff;
  CHECK_EQ(crypto_equal(reference, copy, (size_t)index), 1);
  CHECK_EQ(crypto_equal(reference, copy, (size_t)index + 1), 0);
}

// ---- reference mode for the host's cross-checks ----

static int print_digests(int count, char **hex) {
  static uint8_t message[1 << 16];
  uint8_t out[SHA256_DIGEST_BYTES];
  char line[2 * SHA256_DIGEST_BYTES + 1];
  for (int i = 0; i < count; i++) {
    if (strlen(hex[i]) > 2 * sizeof message) return fprintf(stderr, "argument %d is longer than %zu bytes\n", i + 2, sizeof message), 2;
    long length = from_hex(message, hex[i]);
    if (length < 0) return fprintf(stderr, "argument %d is not hex: %s\n", i + 2, hex[i]), 2;
    sha256_of(message, (size_t)length, out);
    to_hex(line, out, sizeof out);
    printf("%s\n", line);
  }
  return 0;
}

static int print_macs(int count, char **hex) {
  static uint8_t message[1 << 16], key[1 << 12];
  uint8_t out[SHA256_DIGEST_BYTES];
  char line[2 * SHA256_DIGEST_BYTES + 1];
  if (count % 2) return fprintf(stderr, "--hmac takes KEYHEX MSGHEX pairs\n"), 2;
  for (int i = 0; i < count; i += 2) {
    if (strlen(hex[i]) > 2 * sizeof key || strlen(hex[i + 1]) > 2 * sizeof message) {
      return fprintf(stderr, "pair %d is too long (key up to %zu bytes, message up to %zu)\n", i / 2 + 1, sizeof key, sizeof message), 2;
    }
    long key_length = from_hex(key, hex[i]), length = from_hex(message, hex[i + 1]);
    if (key_length < 0 || length < 0) return fprintf(stderr, "pair %d is not hex\n", i / 2 + 1), 2;
    hmac_sha256(key, (size_t)key_length, message, (size_t)length, out);
    to_hex(line, out, sizeof out);
    printf("%s\n", line);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--sha256") == 0) return print_digests(argc - 2, &argv[2]);
  if (argc > 1 && strcmp(argv[1], "--hmac") == 0) return print_macs(argc - 2, &argv[2]);
  if (argc > 1) return fprintf(stderr, "usage: %s [--sha256 HEX... | --hmac KEYHEX MSGHEX...]\n", argv[0]), 2;

  for (int i = 0; i < HASH_VECTOR_COUNT; i++) {
    char name[96];
    snprintf(name, sizeof name, "SHA-256 of %s", hash_vectors[i].name);
    run_case(name, sha256_vector, i);
  }
  run_case("SHA-256 of one million 'a', in updates of odd sizes", sha256_million_a, 0);
  for (int i = 0; i < BOUNDARY_VECTOR_COUNT; i++) {
    char name[96];
    snprintf(name, sizeof name, "SHA-256 of %zu times 'a' (padding at a block boundary)", boundary_vectors[i].length);
    run_case(name, sha256_boundary, i);
  }
  for (int number = 1; number <= MAC_VECTOR_COUNT; number++) run_case("RFC 4231 HMAC-SHA-256 test case %d", hmac_vector, number);
  for (int key_length = 63; key_length <= 65; key_length++) run_case("HMAC with a %d-byte key", hmac_key_at_block_size, key_length);
  for (int seed = 1; seed <= 8; seed++) run_case("SHA-256 streamed at random split points equals one-shot (seed %d)", sha256_split_equals_one_shot, seed);
  for (int seed = 1; seed <= 8; seed++) run_case("HMAC streamed at random split points equals one-shot (seed %d)", hmac_split_equals_one_shot, seed);
  run_case("hmac_sha256_final clears the context", hmac_final_clears_context, 0);
  run_case("a keyed context copied serves one message per copy", hmac_keyed_context_copies, 0);
  run_case("crypto_equal: equal inputs", equal_when_equal, 0);
  for (int index = 0; index < 32; index++) run_case("crypto_equal: a difference in byte %d", unequal_in_byte, index);

  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
