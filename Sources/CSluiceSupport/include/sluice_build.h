#ifndef SLUICE_BUILD_H
#define SLUICE_BUILD_H
/// The commit the binary was built from: `SLUICE_BUILD_COMMIT`, which scripts/release.sh
/// sets in the environment (Package.swift defines it for this target); "unknown" otherwise.
const char *sluice_build_commit(void);
#endif
