// Parts: the fitted cartridge's and nosecone's ID chips (DS2431-class, one 1-Wire bus each), read when a cartridge is
// fitted, at start-up and on request, checked (CRCs, two reads that agree, layout, protections) and decoded by the
// layout in hardware/pen.json (idChips.layout); and one-way marks burnt into them (scratchpad, copy, read back).
// One chip transaction at a time, carried on from the main loop as the bus driver finishes each reset or run of bytes.
#include <string.h>       // memcpy, memcmp, memset
#include "parts.h"        // parts_poll, struct part_record
#include "onewire.h"      // onewire_reset, onewire_write, onewire_read, onewire_poll
#include "onewire_crc.h"  // onewire_crc8, onewire_crc16
#include "sensors.h"      // sensors_inputs
#include "protocol.h"     // PART_STATUS_*, WRITE_RESULT_*, PART_ACTIVITY_*, INPUT_BIT_*, ERROR_CODE_*, msg_parts_t
#include "pen_config.h"   // ID_CHIP_*, PART_LAYOUT_*, ONEWIRE_DATASHEET_PROGRAM_MAX_MS

// The DS2431's ROM and memory function commands.
#define CMD_READ_ROM 0x33
#define CMD_MATCH_ROM 0x55
#define CMD_WRITE_SCRATCHPAD 0x0F
#define CMD_READ_SCRATCHPAD 0xAA
#define CMD_COPY_SCRATCHPAD 0x55
#define CMD_READ_MEMORY 0xF0
#define COPY_DONE 0xAA       // after a completed copy the chip answers alternating 0s and 1s
#define ES_FULL_ROW 0x07     // E/S after a whole row was written from its start: ending offset 7, no partial byte
#define ROW_BYTES 8
#define PAGE_BYTES 32
#define MARK_BITS (PAGE_BYTES * 8)
#define ROWS_READ (PART_LAYOUT_READ_BYTES / ROW_BYTES)
#define SELECT_BYTES (1 + PART_ROM_BYTES)  // Match ROM and the id
#define READ_ATTEMPTS 4      // memory passes (or ROM reads) before a read gives up
#define WRITE_ATTEMPTS 2     // a mark written again is the same mark: bits only go from 1 to 0
_Static_assert(PART_LAYOUT_READ_BYTES % ROW_BYTES == 0, "the layout is read in whole rows");

enum job_kind { JOB_NONE, JOB_READ, JOB_WRITE };

// Each step takes the result of the bus operation the step before started, and starts the next one.
enum step {
  READ_RESET, READ_SEND_READ_ROM, READ_GET_ROM, READ_CHECK_ROM, READ_SEND_READ_MEMORY, READ_GET_FIRST_ROW, READ_TAKE_ROW,
  READ_CHECK_PRESENCE,
  WRITE_RESET, WRITE_SEND_READ_ROW, WRITE_GET_ROW, WRITE_CLEAR_BIT, WRITE_SEND_SCRATCHPAD, WRITE_GET_SCRATCHPAD_CRC,
  WRITE_CHECK_SCRATCHPAD_CRC, WRITE_SEND_READ_SCRATCHPAD, WRITE_GET_SCRATCHPAD, WRITE_CHECK_SCRATCHPAD, WRITE_SEND_COPY,
  WRITE_START_PROGRAMMING, WRITE_GET_COPY_STATUS, WRITE_CHECK_COPY_STATUS, WRITE_SEND_READ_BACK, WRITE_GET_ROW_BACK,
  WRITE_CHECK_ROW_BACK,
};

// One memory pass, decoded as its bytes arrive (no copy of the memory is kept).
struct pass {
  uint16_t crc;            // of every byte read: two passes must agree
  uint16_t identity_crc;   // of the identity page up to its stored CRC
  uint16_t stored_crc;
  uint8_t version, kind;
  uint8_t protection[3];   // pages 0-2
  uint8_t latest_use_bit;  // the use mark of the latest sterilization, still 1 (unused)
};

static struct part_record records[PART_COUNT];
static uint8_t cartridge_in, read_wanted;
// Parts to read once ID_CHIP_SETTLE_AFTER_FIT_MS have passed since settle_from_ms (after start-up, after a fitting).
static uint8_t read_after_settling;
static uint32_t settle_from_ms;
static uint8_t write_wanted, write_part, last_write = WRITE_RESULT_NONE;
static uint8_t write_rom[PART_ROM_BYTES];
static uint16_t write_bit;

// The session's marks: burnt at the first needle start after a cartridge is fitted, for the parts read then (claimed).
enum marks_step {
  MARKS_NONE,           // nothing claimed since the cartridge was fitted
  MARKS_CLAIMED,        // claimed, not burning (after a failure was reported)
  MARKS_CARTRIDGE, MARKS_CARTRIDGE_WRITING, MARKS_NOSECONE, MARKS_NOSECONE_WRITING,
  MARKS_READ_BACK,      // both written: waiting for the reads after them
  MARKS_FAILED,         // a burn failed; reported by the next start
  MARKS_DONE,
};
static struct {
  uint8_t step, failed_part, failed_result;
  uint16_t armed_day;  // the host's date at the last arm the parts passed
  uint8_t rom[PART_COUNT][PART_ROM_BYTES];
} fitting;  // the session under way: from a cartridge's fitting to its removal or a reset

static struct {
  uint8_t kind, part, step, result, waiting, attempts, seen_presence, cancelled, verdict;
  uint8_t row_index, passes;
  uint16_t previous_pass_crc;
  uint32_t now_ms, copy_started_ms;
  struct pass pass;
  struct part_record found;
  uint8_t command[SELECT_BYTES + 3 + ROW_BYTES];
  uint8_t answer[3 + ROW_BYTES + 2];  // TA1 TA2 E/S, a row, CRC-16: Read Scratchpad's answer, the largest
  uint8_t row[ROW_BYTES], new_row[ROW_BYTES];
} job;

static uint8_t zero_bits(uint8_t byte) {
  uint8_t count = 0;
  for (uint8_t bit = 0; bit < 8; bit++) count += !((byte >> bit) & 1);
  return count;
}

// The chip sends a CRC-16's complement, and the layout stores it so.
static uint16_t inverted(uint16_t crc) { return (uint16_t)~crc; }

static uint8_t expected_kind(uint8_t part) {
  return part == PART_CARTRIDGE ? PART_LAYOUT_KIND_CARTRIDGE : PART_LAYOUT_KIND_NOSECONE;
}

void parts_init(void) {
  onewire_init();
  memset(records, 0, sizeof records);
  memset(&job, 0, sizeof job);
  cartridge_in = (sensors_inputs() >> INPUT_BIT_CARTRIDGE_PRESENT) & 1;
  if (!cartridge_in) records[PART_CARTRIDGE].status = PART_STATUS_ABSENT;
  for (uint8_t part = 0; part < PART_COUNT; part++) records[part].latest_sterilization = -1;
  // Both parts are read once the start-up is over (the host's first frames, the boot count's EEPROM write), as after
  // a cartridge is fitted: a read's slot interrupts take about a third of the CPU for 0.4 s.
  read_wanted = 0;
  read_after_settling = PARTS_ALL_BITS;
  settle_from_ms = 0;
  write_wanted = 0;
  last_write = WRITE_RESULT_NONE;
  memset(&fitting, 0, sizeof fitting);
}

void parts_request_read(uint8_t part_bits) { read_wanted |= part_bits & PARTS_ALL_BITS; }
const struct part_record *parts_record(uint8_t part) { return &records[part]; }
uint8_t parts_last_write(void) { return last_write; }

// A part counts as being read from its request (or the cartridge's fitting) until its read ends.
uint8_t parts_activity(void) {
  uint8_t reading = read_wanted | read_after_settling;
  if (job.kind == JOB_READ) reading |= PART_BIT(job.part);
  _Static_assert((int)PART_ACTIVITY_READING_CARTRIDGE == (int)PART_CARTRIDGE &&
                 (int)PART_ACTIVITY_READING_NOSECONE == (int)PART_NOSECONE, "the activity's reading bits are the part bits");
  uint8_t activity = reading;
  if (job.kind == JOB_WRITE || write_wanted) activity |= 1 << PART_ACTIVITY_WRITING;
  return activity;
}

// ---- bus operations of the job under way ----

static void bus_reset(void) {
  onewire_reset(job.part);
  job.waiting = 1;
}

static void bus_write(uint8_t count) {
  onewire_write(job.part, job.command, count);
  job.waiting = 1;
}

static void bus_read(uint8_t *into, uint8_t count) {
  onewire_read(job.part, into, count);
  job.waiting = 1;
}

// Match ROM with the id just read, then a function command and its target address: a command reaches only that chip.
static uint8_t select_command(uint8_t command, uint8_t address) {
  job.command[0] = CMD_MATCH_ROM;
  memcpy(job.command + 1, job.found.rom, PART_ROM_BYTES);
  job.command[SELECT_BYTES] = command;
  job.command[SELECT_BYTES + 1] = address;  // TA1; TA2 (the high byte) is 0 for the DS2431's 0x00-0x8F
  job.command[SELECT_BYTES + 2] = 0;
  return SELECT_BYTES + 3;
}

// ---- reading a part ----

static void commit_read(uint8_t status) {
  if (!job.cancelled) {
    struct part_record *record = &records[job.part];
    if (status == PART_STATUS_OK) {
      *record = job.found;
    } else {
      // The id stays when it was read good: which part failed is worth knowing.
      uint8_t rom_good = status != PART_STATUS_ABSENT && status != PART_STATUS_BUS_SHORTED &&
                         status != PART_STATUS_CRC_ROM && job.found.rom[0] != 0;
      memset(record, 0, sizeof *record);
      if (rom_good) memcpy(record->rom, job.found.rom, PART_ROM_BYTES);
      record->latest_sterilization = -1;
    }
    record->status = status;
  }
  job.kind = JOB_NONE;
}

// What was read is wrong: a chip that still answers gets this verdict, one that stopped answering contact_lost.
static void read_failed(uint8_t status) {
  job.verdict = status;
  bus_reset();
  job.step = READ_CHECK_PRESENCE;
}

static void read_from_the_top(void) {
  if (++job.attempts >= READ_ATTEMPTS) {
    read_failed(PART_STATUS_CONTACT_LOST);
    return;
  }
  bus_reset();
  job.step = READ_SEND_READ_ROM;
}

// A reset's result: 1 when a chip answered; otherwise the read ends (absent if no chip answered all through it) or,
// after an interrupt stretched the reset, starts over.
static uint8_t chip_answered(void) {
  if (job.result == ONEWIRE_DONE) {
    job.seen_presence = 1;
    return 1;
  }
  if (job.result == ONEWIRE_SHORTED) commit_read(PART_STATUS_BUS_SHORTED);
  else if (job.result == ONEWIRE_NO_PRESENCE) commit_read(job.seen_presence ? PART_STATUS_CONTACT_LOST : PART_STATUS_ABSENT);
  else read_from_the_top();
  return 0;
}

static void start_memory_pass(void) {
  memset(&job.pass, 0, sizeof job.pass);
  struct part_record found = { .status = PART_STATUS_OK, .latest_sterilization = -1 };
  memcpy(found.rom, job.found.rom, PART_ROM_BYTES);
  job.found = found;
  job.row_index = 0;
  bus_reset();
  job.step = READ_SEND_READ_MEMORY;
}

static void take_byte(uint8_t address, uint8_t value) {
  struct pass *pass = &job.pass;
  struct part_record *found = &job.found;
  pass->crc = onewire_crc16(pass->crc, value);
  if (address < PAGE_BYTES) {
    if (address < PART_LAYOUT_IDENTITY_CRC_ADDRESS) pass->identity_crc = onewire_crc16(pass->identity_crc, value);
    else pass->stored_crc |= (uint16_t)value << (8 * (address - PART_LAYOUT_IDENTITY_CRC_ADDRESS));
    if (address == PART_LAYOUT_VERSION_ADDRESS) pass->version = value;
    if (address == PART_LAYOUT_KIND_ADDRESS) pass->kind = value;
    if (address >= PART_LAYOUT_LOT_ADDRESS && address < PART_LAYOUT_LOT_ADDRESS + 4) {
      found->lot |= (uint32_t)value << (8 * (address - PART_LAYOUT_LOT_ADDRESS));
    }
    if (address >= PART_LAYOUT_DATE_ADDRESS && address < PART_LAYOUT_DATE_ADDRESS + 2) {
      found->date |= (uint16_t)(value << (8 * (address - PART_LAYOUT_DATE_ADDRESS)));
    }
  } else if (address >= PART_LAYOUT_MARK_PAGE_ADDRESS && address < PART_LAYOUT_MARK_PAGE_ADDRESS + PAGE_BYTES) {
    uint8_t offset = address - PART_LAYOUT_MARK_PAGE_ADDRESS;
    if (job.part == PART_NOSECONE) {
      found->marks += zero_bits(value);
      for (uint8_t bit = 0; bit < 8; bit++) {
        if (!((value >> bit) & 1)) found->latest_sterilization = (int16_t)(offset * 8 + bit);
      }
    } else if (offset == 0) {
      found->marks = zero_bits(value);  // the cartridge's used mark is one byte
    }
  } else if (address >= PART_LAYOUT_USE_MARK_PAGE_ADDRESS && address < PART_LAYOUT_USE_MARK_PAGE_ADDRESS + PAGE_BYTES) {
    uint8_t offset = address - PART_LAYOUT_USE_MARK_PAGE_ADDRESS;
    if (job.part == PART_NOSECONE) {
      found->uses += zero_bits(value);
      // The tally page came first, so the latest sterilization is known: is its use mark still unburnt?
      int16_t latest = found->latest_sterilization;
      if (latest >= 0 && latest / 8 == offset) pass->latest_use_bit = (value >> (latest % 8)) & 1;
    }
  } else if (address >= PART_LAYOUT_PROTECTION_ADDRESS && address < PART_LAYOUT_PROTECTION_ADDRESS + 3) {
    pass->protection[address - PART_LAYOUT_PROTECTION_ADDRESS] = value;
  }
}

// Two passes agree: the memory is what it says; now whether it is a good part of this kind.
static uint8_t memory_verdict(void) {
  const struct pass *pass = &job.pass;
  if (inverted(pass->identity_crc) != pass->stored_crc) return PART_STATUS_CRC_MEMORY;
  if (pass->version != PART_LAYOUT_VERSION || pass->kind != expected_kind(job.part)) return PART_STATUS_NOT_A_PART;
  if (pass->protection[0] != PART_LAYOUT_WRITE_PROTECT || pass->protection[1] != PART_LAYOUT_EPROM ||
      pass->protection[2] != PART_LAYOUT_EPROM) {
    return PART_STATUS_UNPROTECTED;
  }
  job.found.unused_since_sterilization = pass->latest_use_bit;
  return PART_STATUS_OK;
}

// A lost contact reads as 1s, a short as 0s, both somewhere in the middle: two passes in a row must agree.
static void end_of_pass(void) {
  job.passes++;
  if (job.passes >= 2 && job.pass.crc == job.previous_pass_crc) {
    read_failed(memory_verdict());  // and the chip must still answer after the read, else contact_lost
    return;
  }
  job.previous_pass_crc = job.pass.crc;
  if (job.passes >= READ_ATTEMPTS) {
    read_failed(PART_STATUS_CRC_MEMORY);
    return;
  }
  start_memory_pass();
}

static void read_step(void) {
  if (job.cancelled) {
    job.kind = JOB_NONE;  // the cartridge came out: its record already says so
    return;
  }
  switch (job.step) {
    case READ_RESET:
      bus_reset();
      job.step = READ_SEND_READ_ROM;
      return;
    case READ_SEND_READ_ROM:
      if (!chip_answered()) return;
      job.command[0] = CMD_READ_ROM;
      bus_write(1);
      job.step = READ_GET_ROM;
      return;
    case READ_GET_ROM:
      bus_read(job.found.rom, PART_ROM_BYTES);
      job.step = READ_CHECK_ROM;
      return;
    case READ_CHECK_ROM: {
      uint8_t crc = 0;
      for (uint8_t i = 0; i < PART_ROM_BYTES; i++) crc = onewire_crc8(crc, job.found.rom[i]);
      if (job.result != ONEWIRE_DONE || crc != 0) {
        // Again from the reset; after READ_ATTEMPTS, a chip that still answers has a bad id.
        if (job.attempts + 1 < READ_ATTEMPTS) {
          read_from_the_top();
          return;
        }
        memset(job.found.rom, 0, sizeof job.found.rom);
        read_failed(PART_STATUS_CRC_ROM);
        return;
      }
      if (job.found.rom[0] != ID_CHIP_FAMILY_CODE) {
        read_failed(PART_STATUS_NOT_A_PART);  // not a DS2431: its memory commands may mean something else
        return;
      }
      job.passes = 0;
      start_memory_pass();
      return;
    }
    case READ_SEND_READ_MEMORY:
      if (!chip_answered()) return;
      bus_write(select_command(CMD_READ_MEMORY, 0));
      job.step = READ_GET_FIRST_ROW;
      return;
    case READ_GET_FIRST_ROW:
    case READ_TAKE_ROW:
      if (job.result != ONEWIRE_DONE) {
        read_from_the_top();
        return;
      }
      if (job.step == READ_TAKE_ROW) {
        for (uint8_t i = 0; i < ROW_BYTES; i++) take_byte((uint8_t)(job.row_index * ROW_BYTES + i), job.row[i]);
        if (++job.row_index == ROWS_READ) {
          end_of_pass();
          return;
        }
      }
      // Read Memory carries on through the memory for as long as the master reads: a row at a time, decoded as it comes.
      bus_read(job.row, ROW_BYTES);
      job.step = READ_TAKE_ROW;
      return;
    case READ_CHECK_PRESENCE:
      if (chip_answered()) commit_read(job.verdict);
      return;
  }
}

// ---- writing a mark ----

static void finish_write(uint8_t result) {
  if (result != WRITE_RESULT_OK && !job.cancelled && ++job.attempts < WRITE_ATTEMPTS) {
    job.step = WRITE_RESET;  // from the row's read again: the same bit cleared twice is the same mark
    job.waiting = 0;
    return;
  }
  last_write = job.cancelled ? WRITE_RESULT_PART_UNREADABLE : result;
  read_wanted |= PART_BIT(job.part);  // whatever happened, read the part afresh
  job.kind = JOB_NONE;
}

static uint8_t write_address(void) { return (uint8_t)(write_bit / 64 * ROW_BYTES); }

// Each step of a write needs the chip answering and the bytes moved; else the write fails as part_unreadable.
static uint8_t write_bus_ok(void) {
  if (job.result == ONEWIRE_DONE && !job.cancelled) return 1;
  finish_write(WRITE_RESULT_PART_UNREADABLE);
  return 0;
}

static uint16_t crc16_of(uint8_t first, const uint8_t *bytes, uint8_t count) {
  uint16_t crc = onewire_crc16(0, first);
  for (uint8_t i = 0; i < count; i++) crc = onewire_crc16(crc, bytes[i]);
  return crc;
}

static void write_step(void) {
  uint8_t address = write_address();
  if (job.step != WRITE_RESET && job.step != WRITE_GET_COPY_STATUS && !write_bus_ok()) return;
  switch (job.step) {
    case WRITE_RESET:
      bus_reset();
      job.step = WRITE_SEND_READ_ROW;
      return;
    case WRITE_SEND_READ_ROW:
      bus_write(select_command(CMD_READ_MEMORY, address));
      job.step = WRITE_GET_ROW;
      return;
    case WRITE_GET_ROW:
      bus_read(job.row, ROW_BYTES);
      job.step = WRITE_CLEAR_BIT;
      return;
    case WRITE_CLEAR_BIT:
      // The row as it is, with the one bit cleared: in EPROM mode the chip ANDs what it is sent with the memory anyway.
      memcpy(job.new_row, job.row, ROW_BYTES);
      job.new_row[(write_bit % 64) / 8] &= (uint8_t)~(1 << (write_bit % 8));
      bus_reset();
      job.step = WRITE_SEND_SCRATCHPAD;
      return;
    case WRITE_SEND_SCRATCHPAD: {
      uint8_t length = select_command(CMD_WRITE_SCRATCHPAD, address);
      memcpy(job.command + length, job.new_row, ROW_BYTES);
      bus_write(length + ROW_BYTES);
      job.step = WRITE_GET_SCRATCHPAD_CRC;
      return;
    }
    case WRITE_GET_SCRATCHPAD_CRC:
      bus_read(job.answer, 2);  // the inverted CRC-16 of command, address and data, as the chip received them
      job.step = WRITE_CHECK_SCRATCHPAD_CRC;
      return;
    case WRITE_CHECK_SCRATCHPAD_CRC: {
      uint16_t crc = crc16_of(CMD_WRITE_SCRATCHPAD, job.command + SELECT_BYTES + 1, 2 + ROW_BYTES);
      if (inverted(crc) != (uint16_t)(job.answer[0] | job.answer[1] << 8)) {
        finish_write(WRITE_RESULT_SCRATCHPAD_CRC);
        return;
      }
      bus_reset();
      job.step = WRITE_SEND_READ_SCRATCHPAD;
      return;
    }
    case WRITE_SEND_READ_SCRATCHPAD:
      job.command[SELECT_BYTES] = CMD_READ_SCRATCHPAD;
      bus_write(SELECT_BYTES + 1);
      job.step = WRITE_GET_SCRATCHPAD;
      return;
    case WRITE_GET_SCRATCHPAD:
      bus_read(job.answer, sizeof job.answer);  // TA1 TA2 E/S, the row, the inverted CRC-16
      job.step = WRITE_CHECK_SCRATCHPAD;
      return;
    case WRITE_CHECK_SCRATCHPAD: {
      uint16_t crc = crc16_of(CMD_READ_SCRATCHPAD, job.answer, 3 + ROW_BYTES);
      if (inverted(crc) != (uint16_t)(job.answer[3 + ROW_BYTES] | job.answer[4 + ROW_BYTES] << 8)) {
        finish_write(WRITE_RESULT_SCRATCHPAD_CRC);
        return;
      }
      if (job.answer[0] != address || job.answer[1] != 0 || job.answer[2] != ES_FULL_ROW ||
          memcmp(job.answer + 3, job.new_row, ROW_BYTES) != 0) {
        finish_write(WRITE_RESULT_SCRATCHPAD_MISMATCH);
        return;
      }
      bus_reset();
      job.step = WRITE_SEND_COPY;
      return;
    }
    case WRITE_SEND_COPY:
      // The authorization: the target address and E/S exactly as Read Scratchpad gave them.
      job.command[SELECT_BYTES] = CMD_COPY_SCRATCHPAD;
      memcpy(job.command + SELECT_BYTES + 1, job.answer, 3);
      bus_write(SELECT_BYTES + 4);
      job.step = WRITE_START_PROGRAMMING;
      return;
    case WRITE_START_PROGRAMMING:
      // The chip programs for up to tPROG powered from the bus, which must stay high: no slot until then, and the main
      // loop goes on meanwhile.
      job.copy_started_ms = job.now_ms;
      job.step = WRITE_GET_COPY_STATUS;
      return;
    case WRITE_GET_COPY_STATUS:
      if (job.now_ms - job.copy_started_ms <= ONEWIRE_DATASHEET_PROGRAM_MAX_MS) return;  // whole ms: over tPROG
      bus_read(job.answer, 1);
      job.step = WRITE_CHECK_COPY_STATUS;
      return;
    case WRITE_CHECK_COPY_STATUS:
      if (job.answer[0] != COPY_DONE) {
        finish_write(WRITE_RESULT_COPY_FAILED);
        return;
      }
      bus_reset();
      job.step = WRITE_SEND_READ_BACK;
      return;
    case WRITE_SEND_READ_BACK:
      bus_write(select_command(CMD_READ_MEMORY, address));
      job.step = WRITE_GET_ROW_BACK;
      return;
    case WRITE_GET_ROW_BACK:
      bus_read(job.row, ROW_BYTES);
      job.step = WRITE_CHECK_ROW_BACK;
      return;
    case WRITE_CHECK_ROW_BACK:
      finish_write(memcmp(job.row, job.new_row, ROW_BYTES) == 0 ? WRITE_RESULT_OK : WRITE_RESULT_VERIFY_FAILED);
      return;
  }
}

// ---- scheduling ----

static void follow_cartridge(uint32_t now_ms) {
  uint8_t in = (sensors_inputs() >> INPUT_BIT_CARTRIDGE_PRESENT) & 1;
  if (in != cartridge_in) {
    cartridge_in = in;
    struct part_record *record = &records[PART_CARTRIDGE];
    memset(record, 0, sizeof *record);
    record->latest_sterilization = -1;
    record->status = in ? PART_STATUS_UNKNOWN : PART_STATUS_ABSENT;
    read_wanted &= (uint8_t)~PART_BIT(PART_CARTRIDGE);
    read_after_settling &= (uint8_t)~PART_BIT(PART_CARTRIDGE);
    if (job.kind != JOB_NONE && job.part == PART_CARTRIDGE) job.cancelled = 1;
    // A new fitting is a new session; a burn under way goes on (a chip mid-copy finishes it on bus power).
    memset(&fitting, 0, sizeof fitting);
    // A cartridge just fitted: read it (and the nosecone, which comes off to change one) once its contacts settle.
    if (in) {
      read_after_settling = PARTS_ALL_BITS;
      settle_from_ms = now_ms;
    }
  }
  if (read_after_settling && now_ms - settle_from_ms >= ID_CHIP_SETTLE_AFTER_FIT_MS) {
    read_wanted |= read_after_settling;
    read_after_settling = 0;
  }
}

// ---- the session's marks ----

static uint8_t claimed_part_fitted(uint8_t part) {
  const struct part_record *record = &records[part];
  return record->status == PART_STATUS_OK && memcmp(record->rom, fitting.rom[part], PART_ROM_BYTES) == 0;
}

// A part claimed for the session under way, still fitted and read good: its marks may be this session's own.
static uint8_t claimed_by_session(uint8_t part) { return fitting.step != MARKS_NONE && claimed_part_fitted(part); }

static uint8_t session_claimed(void) { return claimed_by_session(PART_CARTRIDGE) && claimed_by_session(PART_NOSECONE); }

static void marks_failed(uint8_t part, uint8_t result) {
  fitting.failed_part = part;
  fitting.failed_result = result;
  fitting.step = MARKS_FAILED;
}

// The bit a session burns: the cartridge's used mark, or the use mark of the nosecone's latest sterilization.
static uint16_t session_mark_bit(uint8_t part) {
  if (part == PART_CARTRIDGE) return PART_LAYOUT_MARK_PAGE_ADDRESS * 8;
  return (uint16_t)(PART_LAYOUT_USE_MARK_PAGE_ADDRESS * 8 + records[PART_NOSECONE].latest_sterilization);
}

// One step of burning the session's marks, between chip transactions: each mark written and read back, then both
// parts read again, which must show them used.
static void advance_session_marks(void) {
  uint8_t part = fitting.step < MARKS_NOSECONE ? PART_CARTRIDGE : PART_NOSECONE;
  int32_t ignored;
  switch (fitting.step) {
    case MARKS_CARTRIDGE:
    case MARKS_NOSECONE:
      if (part == PART_NOSECONE && records[PART_NOSECONE].latest_sterilization < 0) {
        marks_failed(part, WRITE_RESULT_PART_UNREADABLE);
        return;
      }
      if (parts_start_mark(part, fitting.rom[part], session_mark_bit(part), &ignored) != 0) {
        marks_failed(part, WRITE_RESULT_PART_UNREADABLE);
        return;
      }
      fitting.step++;
      return;
    case MARKS_CARTRIDGE_WRITING:
    case MARKS_NOSECONE_WRITING:
      if (last_write != WRITE_RESULT_OK) marks_failed(part, last_write);
      else fitting.step++;
      return;
    case MARKS_READ_BACK:
      if (read_wanted || read_after_settling) return;
      if (!claimed_part_fitted(PART_CARTRIDGE) || records[PART_CARTRIDGE].marks == 0) {
        marks_failed(PART_CARTRIDGE, WRITE_RESULT_VERIFY_FAILED);
      } else if (!claimed_part_fitted(PART_NOSECONE) || records[PART_NOSECONE].unused_since_sterilization) {
        marks_failed(PART_NOSECONE, WRITE_RESULT_VERIFY_FAILED);
      } else {
        fitting.step = MARKS_DONE;
      }
      return;
  }
}

static void start_job(uint8_t kind, uint8_t part) {
  memset(&job, 0, sizeof job);
  job.kind = kind;
  job.part = part;
  job.step = kind == JOB_READ ? READ_RESET : WRITE_RESET;
  job.found.latest_sterilization = -1;
}

void parts_poll(uint32_t now_ms) {
  follow_cartridge(now_ms);
  if (!cartridge_in) read_wanted &= (uint8_t)~PART_BIT(PART_CARTRIDGE);  // its switch says there is none to read
  if (job.kind == JOB_NONE && !write_wanted) advance_session_marks();
  if (job.kind == JOB_NONE) {
    if (write_wanted) {
      write_wanted = 0;
      // A read since the command may have found another part, or none: the mark is for the one named.
      const struct part_record *record = &records[write_part];
      if (record->status != PART_STATUS_OK || memcmp(record->rom, write_rom, PART_ROM_BYTES) != 0) {
        last_write = WRITE_RESULT_PART_UNREADABLE;
        return;
      }
      start_job(JOB_WRITE, write_part);
      memcpy(job.found.rom, write_rom, PART_ROM_BYTES);
    } else if (read_wanted) {
      uint8_t part = (read_wanted & PART_BIT(PART_CARTRIDGE)) ? PART_CARTRIDGE : PART_NOSECONE;
      read_wanted &= (uint8_t)~PART_BIT(part);
      start_job(JOB_READ, part);
    } else {
      return;
    }
  }
  job.now_ms = now_ms;
  if (job.waiting) {
    uint8_t result = onewire_poll();
    if (result == ONEWIRE_BUSY) return;
    job.waiting = 0;
    job.result = result;
  }
  if (job.kind == JOB_READ) read_step();
  else write_step();
}

// ---- commands ----

uint8_t parts_start_mark(uint8_t part, const uint8_t *rom, uint16_t bit_index, int32_t *detail) {
  const struct part_record *record = &records[part];
  *detail = record->status;
  if (record->status != PART_STATUS_OK) return ERROR_CODE_PART_UNREADABLE;
  *detail = 0;
  if (memcmp(rom, record->rom, PART_ROM_BYTES) != 0) return ERROR_CODE_PART_MISMATCH;
  if (write_wanted || job.kind == JOB_WRITE) return ERROR_CODE_PARTS_BUSY;
  *detail = bit_index;
  // Marks go only into the two EPROM-mode pages.
  if (bit_index < PART_LAYOUT_MARK_PAGE_ADDRESS * 8 || bit_index >= (PART_LAYOUT_USE_MARK_PAGE_ADDRESS + PAGE_BYTES) * 8) {
    return ERROR_CODE_OUT_OF_RANGE;
  }
  write_part = part;
  memcpy(write_rom, rom, PART_ROM_BYTES);
  write_bit = bit_index;
  write_wanted = 1;
  last_write = WRITE_RESULT_PENDING;
  return 0;
}

uint8_t parts_record_sterilization(const uint8_t *rom, int32_t *detail) {
  const struct part_record *nosecone = &records[PART_NOSECONE];
  // A nosecone is sterilized off the pen, so never during a session: one recorded then would hide the session's use.
  *detail = fitting.step;
  if (fitting.step != MARKS_NONE) return ERROR_CODE_NOT_ALLOWED_IN_STATE;
  // The bit after the highest one cleared: a fresh bit whatever pattern the tally holds, so the count grows by one.
  int16_t next = nosecone->latest_sterilization + 1;
  _Static_assert(ID_CHIP_NOSECONE_CYCLE_LIMIT <= MARK_BITS, "the tally holds the cycle limit");
  if (nosecone->status == PART_STATUS_OK && (nosecone->marks >= ID_CHIP_NOSECONE_CYCLE_LIMIT || next >= MARK_BITS)) {
    *detail = nosecone->marks;
    return ERROR_CODE_NOSECONE_AT_LIMIT;
  }
  return parts_start_mark(PART_NOSECONE, rom, (uint16_t)(PART_LAYOUT_MARK_PAGE_ADDRESS * 8 + next), detail);
}

uint8_t parts_report(uint8_t *out) {
  const struct part_record *cartridge = &records[PART_CARTRIDGE], *nosecone = &records[PART_NOSECONE];
  msg_parts_t report = {
    .msg_id = MSG_PARTS,
    .activity = parts_activity(),
    .last_write = last_write,
    .cartridge_status = cartridge->status,
    .cartridge_lot = cartridge->lot,
    .cartridge_expiry_day = cartridge->date,
    .cartridge_used_bits = (uint8_t)cartridge->marks,
    .nosecone_status = nosecone->status,
    .nosecone_lot = nosecone->lot,
    .nosecone_sterilizations = nosecone->marks,
    .nosecone_uses = nosecone->uses,
    .nosecone_unused_since_sterilization = nosecone->unused_since_sterilization,
  };
  memcpy(report.cartridge_rom, cartridge->rom, PART_ROM_BYTES);
  memcpy(report.nosecone_rom, nosecone->rom, PART_ROM_BYTES);
  memcpy(out, &report, sizeof report);
  return sizeof report;
}

uint8_t parts_arm_refusal(uint16_t today_day, int32_t *detail, uint8_t *part) {
  const struct part_record *cartridge = &records[PART_CARTRIDGE], *nosecone = &records[PART_NOSECONE];
  *part = PART_COUNT;  // the date is the host's, not a part's
  *detail = today_day;
  if (today_day < ID_CHIP_EARLIEST_HOST_DAY) return ERROR_CODE_OUT_OF_RANGE;
  *part = PART_CARTRIDGE;
  *detail = cartridge->status;
  if (cartridge->status != PART_STATUS_OK) return ERROR_CODE_CARTRIDGE_UNREADABLE;
  *detail = cartridge->marks;
  if (cartridge->marks != 0 && !claimed_by_session(PART_CARTRIDGE)) return ERROR_CODE_CARTRIDGE_USED;  // its marks may be ours
  *detail = cartridge->date;
  if (today_day > cartridge->date) return ERROR_CODE_CARTRIDGE_EXPIRED;
  *part = PART_NOSECONE;
  *detail = nosecone->status;
  if (nosecone->status != PART_STATUS_OK) return ERROR_CODE_NOSECONE_UNREADABLE;
  *detail = nosecone->marks;
  if (nosecone->marks >= ID_CHIP_NOSECONE_CYCLE_LIMIT) return ERROR_CODE_NOSECONE_AT_LIMIT;
  if (!claimed_by_session(PART_NOSECONE) && (nosecone->marks == 0 || !nosecone->unused_since_sterilization)) {
    return ERROR_CODE_NOSECONE_NOT_STERILIZED;
  }
  fitting.armed_day = today_day;
  return 0;
}

uint8_t parts_cartridge_refusal(const uint8_t *rom, int32_t *detail) {
  const struct part_record *cartridge = &records[PART_CARTRIDGE];
  *detail = cartridge->status;
  if (cartridge->status != PART_STATUS_OK) return ERROR_CODE_CARTRIDGE_UNREADABLE;
  *detail = 0;
  if (memcmp(rom, cartridge->rom, PART_ROM_BYTES) != 0) return ERROR_CODE_PART_MISMATCH;
  return 0;
}

uint8_t parts_session_marks(int32_t *detail, uint8_t *part) {
  uint8_t step_before = fitting.step;
  *part = PART_CARTRIDGE;
  *detail = step_before;
  switch (fitting.step) {
    case MARKS_DONE:
      if (session_claimed()) return 0;
      // Another part was read since the marks, or none: not this session's, so no start until a new fitting.
      *part = claimed_part_fitted(PART_CARTRIDGE) ? PART_NOSECONE : PART_CARTRIDGE;
      *detail = records[*part].status;
      if (records[*part].status == PART_STATUS_OK) return ERROR_CODE_PART_MISMATCH;
      return *part == PART_CARTRIDGE ? ERROR_CODE_CARTRIDGE_UNREADABLE : ERROR_CODE_NOSECONE_UNREADABLE;
    case MARKS_FAILED:
      *part = fitting.failed_part;
      *detail = fitting.failed_result;
      fitting.step = MARKS_CLAIMED;  // reported once; the next start burns again
      return ERROR_CODE_MARK_FAILED;
    case MARKS_NONE: {
      // The parts fitted now are the ones claimed: checked again, in case a read since the arm found others.
      uint8_t unfit = parts_arm_refusal(fitting.armed_day, detail, part);
      if (unfit) return unfit;
      for (uint8_t each = 0; each < PART_COUNT; each++) memcpy(fitting.rom[each], records[each].rom, PART_ROM_BYTES);
      fitting.step = MARKS_CARTRIDGE;
      break;
    }
    case MARKS_CLAIMED:
      fitting.step = MARKS_CARTRIDGE;
      break;
  }
  *part = PART_CARTRIDGE;
  *detail = step_before;  // where the burn stood when asked (0: just started)
  return ERROR_CODE_PARTS_BUSY;
}
