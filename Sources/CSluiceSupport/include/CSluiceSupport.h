#ifndef CSLUICESUPPORT_H
#define CSLUICESUPPORT_H
// Umbrella header. Each part lives in its own header; none includes a third-party header.
#include "sluice_crc32c.h"
#include "sluice_codecs.h"
#include "sluice_files.h"
#include "sluice_build.h"
#endif
