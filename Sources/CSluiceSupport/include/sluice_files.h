#ifndef SLUICE_FILES_H
#define SLUICE_FILES_H
// File-system calls Swift's Glibc module does not import (they need _GNU_SOURCE).

/// syncfs(2): writes out everything dirty on the file system that holds `fd`.
int sluice_syncfs(int fd);

#endif
