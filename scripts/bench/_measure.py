"""Run a command, print JSON {"seconds", "max_rss_mb", "rc"} for it (peak RSS of the largest descendant)."""
import json, resource, subprocess, sys, time

t0 = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL if "--quiet-child" in sys.argv else None)
dt = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "max_rss_mb": rss, "rc": rc}))
