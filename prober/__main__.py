from prober.cli import entry

entry()
