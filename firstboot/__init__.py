"""The appliances' first boot: the vApp properties each OVA declares, the OVF environment
reader, and what a boot makes of them (network, NTP, admin access, firewall, the hcc unit's
environment file).

Pure parts: :mod:`firstboot.properties` (what is declared), :mod:`firstboot.ovfenv` (OVF
environment XML → key/value, through defusedxml), :mod:`firstboot.config` (values →
validated settings), :mod:`firstboot.render` (settings → file contents). I/O:
:mod:`firstboot.apply` (read the environment, write files, run chpasswd), ``python -m
firstboot`` (the hcc-firstboot unit), :mod:`firstboot.broker` (the server's RabbitMQ user),
:mod:`firstboot.descriptor` and :mod:`firstboot.ova` (build time: the OVF descriptor and the
OVA). See docs/appliances.md.
"""
