// The C tests' harness: each case in its own process (a crash or sanitizer report fails that case only), each failure
// printed with file:line and the case's name; the program prints the final `N passed, M failed` line.
#pragma once
#include <stdarg.h>    // va_list
#include <stdio.h>     // printf, fflush
#include <stdlib.h>    // exit
#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, _exit

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

// Run in each case's process before the case (the logic tests reset the fake board there).
static void (*case_setup)(void);

// Runs fn(arg) in a child process; the name may hold one %d for arg.
static int run_forked(const char *name, void (*fn)(int), int arg) {
  char label[160];
  snprintf(label, sizeof label, name, arg);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    case_name = label;
    if (case_setup) case_setup();
    fn(arg);
    fflush(stdout);
    _exit(case_failures ? 1 : 0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 1;
  if (WIFSIGNALED(status)) printf("[%s] died of signal %d\n", label, WTERMSIG(status));
  else if (WEXITSTATUS(status) != 1) printf("[%s] exited with %d (a sanitizer report is above)\n", label, WEXITSTATUS(status));
  return 0;
}

static void run_case(const char *name, void (*fn)(int), int arg) {
  if (run_forked(name, fn, arg)) {
    passed++;
  } else {
    failed++;
    char label[160];
    snprintf(label, sizeof label, name, arg);
    printf("FAILED: %s\n", label);
  }
}
