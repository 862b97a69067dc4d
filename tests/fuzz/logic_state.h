// Included ahead of each firmware logic file in the fuzz build only (clang -include): the file's static variables go
// into two named sections that tests/fuzz/link_fuzz.c saves once, at start, and restores before every input, so each
// input meets the logic in its power-on state.
#pragma clang section bss="pen_logic_bss" data="pen_logic_data"
