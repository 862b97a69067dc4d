// The C tests' checks: each failure printed with file:line and the case's name, counted for the case; a case's
// verdict and the final `N passed, M failed` line are the test program's.
#pragma once
#include <stdarg.h>  // va_list
#include <stdio.h>   // printf, fflush
#include <unistd.h>  // _exit

static const char *case_name = "";
static int case_failures;
static int passed, failed;

static void fail_at(const char *file, int line, const char *format, ...) {
  va_list args;
  va_start(args, format);
  printf("%s:%d: [%s] ", file, line, case_name);
  vprintf(format, args);
  printf("\n");
  va_end(args);
  case_failures++;
}

#define CHECK(condition) \
  do { if (!(condition)) fail_at(__FILE__, __LINE__, "%s", #condition); } while (0)
#define CHECK_EQ(actual, expected)                                                                     \
  do {                                                                                                 \
    long long actual_ = (long long)(actual), expected_ = (long long)(expected);                        \
    if (actual_ != expected_) fail_at(__FILE__, __LINE__, "%s is %lld, expected %lld", #actual, actual_, expected_); \
  } while (0)
// A step the rest of the case stands on: stop the case here.
#define REQUIRE(condition)                                                                             \
  do {                                                                                                 \
    if (!(condition)) {                                                                                \
      fail_at(__FILE__, __LINE__, "required: %s", #condition);                                         \
      fflush(stdout);                                                                                  \
      _exit(1);                                                                                        \
    }                                                                                                  \
  } while (0)
