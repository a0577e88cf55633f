#include "sluice_build.h"

#ifndef SLUICE_BUILD_COMMIT
#define SLUICE_BUILD_COMMIT unknown
#endif
#define SLUICE_STRINGIFY2(x) #x
#define SLUICE_STRINGIFY(x) SLUICE_STRINGIFY2(x)

const char *sluice_build_commit(void) { return SLUICE_STRINGIFY(SLUICE_BUILD_COMMIT); }
