"""Kernel constants: ioctl numbers computed by _IOC match the kernel's published values."""

import pytest

from tunkit import _uapi as u

# (machine, (dir, type, nr, size) helper, expected) — values as the C headers expand them.
CASES = [
    ("x86_64", ("W", "T", 202, 4), 0x400454CA),  # TUNSETIFF
    ("x86_64", ("R", "T", 210, 4), 0x800454D2),  # TUNGETIFF
    ("x86_64", ("W", "T", 208, 4), 0x400454D0),  # TUNSETOFFLOAD
    ("x86_64", ("W", "T", 213, 16), 0x401054D5),  # TUNATTACHFILTER on 64-bit
    ("aarch64", ("W", "T", 202, 4), 0x400454CA),
    ("riscv64", ("R", "T", 207, 4), 0x800454CF),  # TUNGETFEATURES
    ("ppc64le", ("W", "T", 202, 4), 0x800454CA),  # 3 direction bits, WRITE=4
    ("ppc64le", ("R", "T", 210, 4), 0x400454D2),
    ("mips", ("W", "T", 202, 4), 0x800454CA),
    ("sparc64", ("R", "T", 207, 4), 0x400454CF),
    ("x86_64", ("N", "T", 227, 0), 0x54E3),  # TUNGETDEVNETNS = _IO('T', 227)
    ("ppc64", ("N", "T", 227, 0), 0x200054E3),  # _IOC_NONE is 1 there
]


@pytest.mark.parametrize("machine,spec,want", CASES)
def test_ioc_encoding(machine, spec, want):
    enc = u.ioc_encoding(machine)
    d, t, nr, size = spec
    if d == "W":
        got = u._IOW(t, nr, size, enc)
    elif d == "R":
        got = u._IOR(t, nr, size, enc)
    else:
        got = u._IO(t, nr, enc)
    assert got == want, f"{machine} {spec}: {got:#x} != {want:#x}"


def test_host_constants_are_computed_for_this_machine():
    enc = u.ioc_encoding()
    assert u.TUNSETIFF == u._IOW("T", 202, 4, enc)
    assert u.TUNSETOFFLOAD == u._IOW("T", 208, 4, enc)


def test_size_must_fit():
    with pytest.raises(ValueError, match="does not fit"):
        u._IOW("T", 1, 1 << 14, u.ioc_encoding("x86_64"))
    with pytest.raises(ValueError):
        u._IOW("T", 1, 1 << 13, u.ioc_encoding("ppc64"))


def test_flag_sets_read_like_c_names():
    assert (u.TunFlag.TUN | u.TunFlag.NO_PI).name == "TUN|NO_PI"
    assert int(u.TunOffload.CSUM | u.TunOffload.TSO4 | u.TunOffload.TSO6) == 0x07
