print("StorageBench: see scripts/bench-storage.sh")
