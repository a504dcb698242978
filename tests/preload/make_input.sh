#!/usr/bin/env bash
# make_input.sh FILE - writes the preload tests' input: 60000 lines of
# "number word letters", the same on every run (awk's seeded generator).
set -eu
awk 'BEGIN {
  srand(7)
  for (i = 0; i < 60000; i++)
    printf "%d w%d %s\n", int(rand() * 1000000), int(rand() * 5000),
           substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 20), 1 + int(rand() * 6))
}' >"$1"
