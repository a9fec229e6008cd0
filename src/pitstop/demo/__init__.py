"""The demo: synthetic delivery-time data and the story `pitstop demo` tells."""
