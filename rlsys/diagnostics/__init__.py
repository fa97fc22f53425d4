"""What `rlsys doctor` inspects: this machine, the settings rlsys derives from it, and what a
demo run should take here."""
