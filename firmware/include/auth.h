// Auth: the pen's identity (serial number and the keys of the keyed roles, provisioned once) and the challenge–response
// that grants a role for one execution of one service command, with a lockout after wrong answers (docs/protocol.md).
#pragma once
#include <stdint.h>    // uint8_t, uint32_t
#include "protocol.h"  // AUTH_*_BYTES, ROLE_*, msg_challenge_t, msg_auth_status_t

// Reprocessing, technician and engineer have keys (ROLE_REPROCESSING..ROLE_ENGINEER); the operator has none.
#define AUTH_KEYED_ROLES 3
#define AUTH_KEYED_ROLE_BITS ((1 << ROLE_REPROCESSING) | (1 << ROLE_TECHNICIAN) | (1 << ROLE_ENGINEER))

// The identity record in EEPROM: the serial (NUL-padded ASCII), then a key per keyed role in role order.
struct auth_identity {
  char serial[AUTH_SERIAL_BYTES];
  uint8_t keys[AUTH_KEYED_ROLES][AUTH_KEY_BYTES];
};

// The counters record in EEPROM (fields saturate rather than wrap).
struct __attribute__((packed)) auth_counters {
  uint32_t boot_count;            // one more each start: the nonce's first word
  uint16_t wrong_answers;         // every wrong answer, ever
  uint16_t refusals;              // every refusal of the role checks, wrong answers included
  uint8_t consecutive_failures;   // wrong answers since the last right one: the lockout's length
};

// Loads the identity and counters, and counts this boot (queued EEPROM write; no challenge until it is durable).
void auth_init(void);
// Each main-loop pass: a challenge or grant past its time is dropped; refusals counted since the last write are
// written as soon as the EEPROM is free (refusals alone at most every AUTH_COUNTER_WRITE_PERIOD_MS).
void auth_poll(uint32_t now_ms);

// For every frame the dispatcher executes, before anything else: drops a waiting challenge unless the frame is
// answer_challenge, and returns the role granted for this message (ROLE_OPERATOR: none). A grant ends here either way.
uint8_t auth_take_grant(uint8_t message_id);
// May a command that needs role run, given the role granted for it? 0, or the error code (a refusal is counted).
uint8_t auth_refusal(uint8_t message_id, uint8_t role, uint8_t granted_role, int32_t *detail);

// A keyed role and a command that needs it (both checked by the caller), with the needle still: fills the challenge
// and computes the expected answer (HMAC-SHA256, about 13 ms at 16 MHz), or returns an error code.
uint8_t auth_request_challenge(uint8_t role, uint8_t command_id, msg_challenge_t *challenge, int32_t *detail);
// The answer to the waiting challenge: 0 grants it; the wrong answer is in EEPROM before the comparison.
uint8_t auth_answer(const uint8_t mac[AUTH_MAC_BYTES], int32_t *detail);
// Stages a key for provision; 0 or an error code.
uint8_t auth_stage_key(uint8_t role, const uint8_t key[AUTH_KEY_BYTES], int32_t *detail);
// Stores the serial and the staged keys (queued EEPROM write); 0 or an error code.
uint8_t auth_provision(const char serial[AUTH_SERIAL_BYTES], int32_t *detail);

void auth_status(msg_auth_status_t *status);
uint8_t auth_provisioned(void);
// AUTH_SERIAL_BYTES, NUL-padded; all NUL when not provisioned.
const char *auth_serial(void);
