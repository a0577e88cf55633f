// File-system calls Swift's Glibc module does not import (they need _GNU_SOURCE).
#define _GNU_SOURCE
#include <unistd.h>

#include "sluice_files.h"

int sluice_syncfs(int fd) { return syncfs(fd); }
