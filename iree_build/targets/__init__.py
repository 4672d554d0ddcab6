"""What a module is compiled for: backends and devices, CPUs and features, toolchain presets."""
