// Bench image, not the pen's firmware: HMAC-SHA256 of a challenge as the pen answers it (16-byte nonce | 16-byte serial |
// command byte, docs/protocol.md) under a 32-byte key on a bare ATmega328P. GPIOR0 marks the start and the end, so bench/crypto.ts counts the cycles between.
#include <avr/io.h>  // GPIOR0
#include "sha256.h"  // hmac_sha256_init, hmac_sha256_update, hmac_sha256_final

#define MARK_START 1
#define MARK_DONE 2

// Inputs and result in RAM, so the bench reads them by their ELF symbols and checks the MAC against node:crypto.
uint8_t crypto_bench_key[32] = {
  0x3c, 0x9a, 0x41, 0x07, 0xe2, 0x5d, 0xb8, 0x16, 0x73, 0xcf, 0x0a, 0x94, 0x2e, 0x61, 0xd5, 0x88,
  0x1b, 0xf0, 0x46, 0xa3, 0x7e, 0x29, 0xc4, 0x5f, 0x90, 0x0d, 0x67, 0xba, 0x32, 0xe9, 0x84, 0x11,
};
uint8_t crypto_bench_nonce[16] = {
  0xa7, 0x12, 0x5e, 0xc9, 0x03, 0x8b, 0xf6, 0x44, 0xd1, 0x2a, 0x97, 0x60, 0x1d, 0xb4, 0x7c, 0xe8,
};
uint8_t crypto_bench_serial[16] = { 'P', 'N', '-', '0', '0', '1', '2', '3', '4' };  // NUL-padded, as identify reports it
uint8_t crypto_bench_command = 0x0D;  // set_depth_calibration
uint8_t crypto_bench_mac[SHA256_DIGEST_BYTES];

// Kept out of main so the context lives in this call's stack frame, which the bench sees as stack use.
__attribute__((noinline)) static void answer_challenge(void) {
  struct hmac_sha256_context context;
  hmac_sha256_init(&context, crypto_bench_key, sizeof crypto_bench_key);
  hmac_sha256_update(&context, crypto_bench_nonce, sizeof crypto_bench_nonce);
  hmac_sha256_update(&context, crypto_bench_serial, sizeof crypto_bench_serial);
  hmac_sha256_update(&context, &crypto_bench_command, 1);
  hmac_sha256_final(&context, crypto_bench_mac);
}

int main(void) {
  GPIOR0 = MARK_START;
  answer_challenge();
  GPIOR0 = MARK_DONE;
  for (;;) {}
}
