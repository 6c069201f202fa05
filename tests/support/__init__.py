"""Test helpers: a real loopback upstream, agent process control."""
