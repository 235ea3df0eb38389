"""The inspection catalogue (巡检): one module per check family, each check a task returning a CheckResult."""
