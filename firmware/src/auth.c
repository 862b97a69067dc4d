// Auth: the pen's identity (serial number and the keys of the keyed roles, provisioned once) and the challenge–response
// that grants a role for one execution of one service command, with a lockout after wrong answers (docs/protocol.md).
#include <string.h>      // memcpy, memset
#include "auth.h"        // struct auth_identity, struct auth_counters
#include "storage.h"     // storage_load, storage_save_record, storage_finish_first_copy
#include "sha256.h"      // hmac_sha256_*, crypto_equal
#include "board.h"       // clock_ms, timebase_ticks, eeprom_byte_read
#include "sensors.h"     // sensors_* (the nonce's noise word)
#include "pen_config.h"  // AUTH_CHALLENGE_TIMEOUT_MS, AUTH_LOCKOUT_*, AUTH_COUNTER_WRITE_PERIOD_MS

// Where the lockout stops growing: base << 6 is past AUTH_LOCKOUT_MAX_MS; a corrupt counters record starts here.
#define LOCKOUT_LONGEST_LEVEL 7
_Static_assert(((uint32_t)AUTH_LOCKOUT_BASE_MS << (LOCKOUT_LONGEST_LEVEL - 1)) >= AUTH_LOCKOUT_MAX_MS, "level 7 is the longest lockout");

static uint8_t provisioned;
static char serial[AUTH_SERIAL_BYTES];
static struct auth_counters counters;  // in force; written at boot, before each compare, and soon after each change
static uint8_t counters_dirty;
static uint8_t counters_urgent;     // a right answer to undo in EEPROM: written as soon as the EEPROM is free
static uint32_t next_write_ms;      // refusals alone are written no sooner than this (a flood of them wears no cell out)
static uint32_t challenges_issued;  // since boot: the nonce's second word
static uint32_t lockout_start_ms, lockout_ms;
// provision_key fills the keys, provision the serial; then the whole record is saved.
static struct auth_identity staged;
static uint8_t staged_roles;  // bit per role

static struct {
  uint8_t pending, role, command;
  uint32_t issued_ms;
  uint8_t expected[AUTH_MAC_BYTES];
} challenge;

static struct {
  uint8_t pending, role, command;
  uint32_t granted_ms;
} grant;

// Clears memory that held key-derived data; volatile, so the compiler keeps the stores.
static void wipe(void *memory, uint8_t length) {
  volatile uint8_t *byte = memory;
  while (length--) *byte++ = 0;
}

static uint32_t lockout_for(uint8_t failures) {
  if (failures == 0) return 0;
  uint32_t ms = AUTH_LOCKOUT_BASE_MS;
  while (--failures && ms < AUTH_LOCKOUT_MAX_MS) ms <<= 1;
  return ms > AUTH_LOCKOUT_MAX_MS ? AUTH_LOCKOUT_MAX_MS : ms;
}

static uint32_t lockout_left(uint32_t now) {
  uint32_t elapsed = now - lockout_start_ms;
  return elapsed >= lockout_ms ? 0 : lockout_ms - elapsed;
}

static void drop_challenge(void) {
  if (!challenge.pending) return;
  challenge.pending = 0;
  wipe(challenge.expected, sizeof challenge.expected);
}

static void count_refusal(void) {
  if (counters.refusals != UINT16_MAX) counters.refusals++;
  counters_dirty = 1;
}

void auth_init(void) {
  provisioned = 0;
  memset(serial, 0, sizeof serial);
  memset(&counters, 0, sizeof counters);
  counters_dirty = counters_urgent = 0;
  challenges_issued = 0;
  challenge.pending = grant.pending = 0;
  wipe(&staged, sizeof staged);
  staged_roles = 0;
  struct auth_identity identity;
  if (storage_load(STORAGE_IDENTITY, &identity) & STORAGE_LOADED) {
    provisioned = 1;
    memcpy(serial, identity.serial, sizeof serial);
  }
  wipe(&identity, sizeof identity);
  uint8_t found = storage_load(STORAGE_AUTH_COUNTERS, &counters);
  if (!(found & (STORAGE_LOADED | STORAGE_BLANK_SLOT))) {
    // Both copies unreadable: count on above the highest boot count either still shows, so no nonce comes back, and
    // start at the longest lockout, since the failures are unknown.
    struct auth_counters copies[2];
    storage_read_slot(STORAGE_AUTH_COUNTERS, 0, &copies[0]);
    storage_read_slot(STORAGE_AUTH_COUNTERS, 1, &copies[1]);
    counters.boot_count = copies[0].boot_count > copies[1].boot_count ? copies[0].boot_count : copies[1].boot_count;
    counters.consecutive_failures = LOCKOUT_LONGEST_LEVEL;
  }
  counters.boot_count++;
  storage_save_record(STORAGE_AUTH_COUNTERS, &counters);
  next_write_ms = clock_ms();
  // A reset does not end a lockout: it starts over at its full length.
  lockout_start_ms = clock_ms();
  lockout_ms = lockout_for(counters.consecutive_failures);
}

void auth_poll(uint32_t now_ms) {
  if (challenge.pending && now_ms - challenge.issued_ms >= AUTH_CHALLENGE_TIMEOUT_MS) drop_challenge();
  if (grant.pending && now_ms - grant.granted_ms >= AUTH_CHALLENGE_TIMEOUT_MS) grant.pending = 0;
  // Not while a challenge or grant waits: its answer needs the EEPROM free, its command may need to write.
  if (counters_dirty && !challenge.pending && !grant.pending && !storage_busy() &&
      (counters_urgent || (int32_t)(now_ms - next_write_ms) >= 0)) {
    storage_save_record(STORAGE_AUTH_COUNTERS, &counters);
    counters_dirty = counters_urgent = 0;
    next_write_ms = now_ms + AUTH_COUNTER_WRITE_PERIOD_MS;
  }
}

uint8_t auth_take_grant(uint8_t message_id) {
  if (message_id != MSG_ANSWER_CHALLENGE) drop_challenge();
  uint8_t role = ROLE_OPERATOR;
  if (grant.pending && grant.command == message_id && clock_ms() - grant.granted_ms < AUTH_CHALLENGE_TIMEOUT_MS) role = grant.role;
  grant.pending = 0;
  return role;
}

uint8_t auth_refusal(uint8_t message_id, uint8_t role, uint8_t granted_role, int32_t *detail) {
  *detail = role;
  if (message_id == MSG_PROVISION && !provisioned) return 0;  // the first provisioning needs no grant
  if (!provisioned) {
    *detail = 0;
    count_refusal();
    return ERROR_CODE_NOT_PROVISIONED;
  }
  if (granted_role != role) {
    count_refusal();
    return ERROR_CODE_ROLE_REQUIRED;
  }
  return 0;
}

static void put_u32(uint8_t *bytes, uint32_t value) {
  for (uint8_t i = 0; i < 4; i++) bytes[i] = (uint8_t)(value >> (8 * i));
}

// What the sensors read now: cheap noise for the nonce's last word (its uniqueness rests on the two counters).
static uint32_t sensor_noise(void) {
  return ((uint32_t)sensors_depth_mv() << 16 | sensors_current_ma()) ^ ((uint32_t)sensors_supply_mv() << 8) ^
         (uint32_t)(uint16_t)sensors_temperature_deci_c() ^ clock_ms();
}

uint8_t auth_request_challenge(uint8_t role, uint8_t command_id, msg_challenge_t *out, int32_t *detail) {
  uint32_t now = clock_ms();
  *detail = 0;
  if (!provisioned) {
    count_refusal();
    return ERROR_CODE_NOT_PROVISIONED;
  }
  uint32_t left = lockout_left(now);
  if (left) {
    *detail = (int32_t)left;
    count_refusal();
    return ERROR_CODE_LOCKED_OUT;
  }
  // Also holds the first challenge of a boot until the boot count is durable, so no nonce is ever issued twice.
  if (storage_busy()) return ERROR_CODE_EEPROM_BUSY;
  out->msg_id = MSG_CHALLENGE;
  out->role = role;
  out->command_id = command_id;
  put_u32(out->nonce, counters.boot_count);
  put_u32(out->nonce + 4, ++challenges_issued);
  put_u32(out->nonce + 8, timebase_ticks());
  put_u32(out->nonce + 12, sensor_noise());
  // The expected answer now, while the needle is still; the key only ever sits on this stack frame.
  uint8_t key[AUTH_KEY_BYTES];
  uint16_t key_address = storage_payload_address(STORAGE_IDENTITY) + AUTH_SERIAL_BYTES + (uint16_t)(role - ROLE_REPROCESSING) * AUTH_KEY_BYTES;
  for (uint8_t i = 0; i < AUTH_KEY_BYTES; i++) key[i] = eeprom_byte_read(key_address + i);
  struct hmac_sha256_context context;
  hmac_sha256_init(&context, key, sizeof key);
  wipe(key, sizeof key);
  hmac_sha256_update(&context, out->nonce, AUTH_NONCE_BYTES);
  hmac_sha256_update(&context, (const uint8_t *)serial, AUTH_SERIAL_BYTES);
  hmac_sha256_update(&context, &command_id, 1);
  hmac_sha256_final(&context, challenge.expected);
  challenge.pending = 1;
  challenge.role = role;
  challenge.command = command_id;
  challenge.issued_ms = now;
  return 0;
}

uint8_t auth_answer(const uint8_t mac[AUTH_MAC_BYTES], int32_t *detail) {
  *detail = 0;
  if (!challenge.pending || clock_ms() - challenge.issued_ms >= AUTH_CHALLENGE_TIMEOUT_MS) {
    drop_challenge();
    count_refusal();
    return ERROR_CODE_NO_CHALLENGE;
  }
  // Answered once, right or wrong.
  uint8_t expected[AUTH_MAC_BYTES];
  memcpy(expected, challenge.expected, sizeof expected);
  uint8_t role = challenge.role, command = challenge.command;
  drop_challenge();
  if (storage_busy()) {
    wipe(expected, sizeof expected);
    return ERROR_CODE_EEPROM_BUSY;
  }
  // Counted as wrong before the comparison, and durable (one copy) before it: a reset after this point cannot take
  // the attempt back, and before it nothing was compared.
  struct auth_counters before = counters;
  if (counters.consecutive_failures != UINT8_MAX) counters.consecutive_failures++;
  if (counters.wrong_answers != UINT16_MAX) counters.wrong_answers++;
  if (counters.refusals != UINT16_MAX) counters.refusals++;
  storage_save_record(STORAGE_AUTH_COUNTERS, &counters);
  uint8_t durable = storage_finish_first_copy();
  uint8_t right = durable && crypto_equal(expected, mac, AUTH_MAC_BYTES);
  wipe(expected, sizeof expected);
  uint32_t now = clock_ms();
  if (right) {
    // The copy saying "wrong" stays in one slot until the counters are written again, right after the granted command
    // (which may need the EEPROM first): a reset before then counts this answer as a wrong one, the safe direction.
    storage_drop_second_copy();
    counters = before;
    counters.consecutive_failures = 0;
    counters_dirty = counters_urgent = 1;
    lockout_ms = 0;
    grant.pending = 1;
    grant.role = role;
    grant.command = command;
    grant.granted_ms = now;
    return 0;
  }
  lockout_start_ms = now;
  lockout_ms = lockout_for(counters.consecutive_failures);
  *detail = (int32_t)lockout_ms;
  return durable ? ERROR_CODE_WRONG_ANSWER : ERROR_CODE_EEPROM_BUSY;
}

uint8_t auth_stage_key(uint8_t role, const uint8_t key[AUTH_KEY_BYTES], int32_t *detail) {
  *detail = role;
  if (role < ROLE_REPROCESSING || role > ROLE_ENGINEER) return ERROR_CODE_OUT_OF_RANGE;
  // All 0x00 or all 0xFF is a blank, not a key.
  uint8_t all_zero = 1, all_ones = 1;
  for (uint8_t i = 0; i < AUTH_KEY_BYTES; i++) {
    if (key[i] != 0x00) all_zero = 0;
    if (key[i] != 0xFF) all_ones = 0;
  }
  if (all_zero || all_ones) return ERROR_CODE_OUT_OF_RANGE;
  memcpy(staged.keys[role - ROLE_REPROCESSING], key, AUTH_KEY_BYTES);
  staged_roles |= (uint8_t)(1 << role);
  return 0;
}

// The first character that breaks the serial's format (1 to 16 printable ASCII characters, no space, then NUL
// padding only), or -1.
static int8_t serial_fault(const char *candidate) {
  uint8_t ended = 0;
  for (uint8_t i = 0; i < AUTH_SERIAL_BYTES; i++) {
    uint8_t c = (uint8_t)candidate[i];
    if (c == 0 && i > 0) ended = 1;
    else if (ended || c < 0x21 || c > 0x7E) return (int8_t)i;
  }
  return -1;
}

uint8_t auth_provision(const char candidate[AUTH_SERIAL_BYTES], int32_t *detail) {
  *detail = 0;
  if (storage_busy()) return ERROR_CODE_EEPROM_BUSY;
  int8_t fault = serial_fault(candidate);
  if (fault >= 0) {
    *detail = fault;
    return ERROR_CODE_OUT_OF_RANGE;
  }
  uint8_t missing = (uint8_t)(AUTH_KEYED_ROLE_BITS & ~staged_roles);
  if (missing) {
    *detail = missing;
    return ERROR_CODE_PROVISION_INCOMPLETE;
  }
  memcpy(staged.serial, candidate, AUTH_SERIAL_BYTES);
  storage_save_record(STORAGE_IDENTITY, &staged);
  wipe(&staged, sizeof staged);
  staged_roles = 0;
  memcpy(serial, candidate, AUTH_SERIAL_BYTES);
  provisioned = 1;
  return 0;
}

void auth_status(msg_auth_status_t *status) {
  status->msg_id = MSG_AUTH_STATUS;
  status->provisioned = provisioned;
  status->boot_count = counters.boot_count;
  status->wrong_answers = counters.wrong_answers;
  status->refusals = counters.refusals;
  status->consecutive_failures = counters.consecutive_failures;
  status->lockout_ms = lockout_left(clock_ms());
  status->staged_keys = staged_roles;
  status->write_pending = storage_busy();
}

uint8_t auth_provisioned(void) { return provisioned; }
const char *auth_serial(void) { return serial; }
