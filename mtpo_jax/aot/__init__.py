"""Ahead-of-time compilation: every jitted step lowered for a named TPU slice or GPU host without running it.

hardware.py     the chips' peak FLOP/s, HBM and bandwidth (one cited table) and the roofline bound
topology.py     the devices of a named slice (libtpu's topology description, or fake CPU devices of its shape)
steps.py        each train / sampling step of the stack as (jitted function, abstract sharded arguments)
compile_report  compile one step, read the compiler's memory and cost analyses, judge fit and roofline
"""
