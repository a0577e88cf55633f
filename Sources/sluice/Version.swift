import CSluiceSupport

/// The release version; scripts/release.sh builds it with the commit baked in.
let sluiceVersion = "0.14.0"

/// `sluice --version`: the version and the commit (`unknown` outside scripts/release.sh).
let sluiceVersionText = "\(sluiceVersion) (commit \(String(cString: sluice_build_commit())))"
