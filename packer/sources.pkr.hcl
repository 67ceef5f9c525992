# One qemu source per appliance, both from the Debian 12 base disk that
# scripts/appliance-base.sh makes with debootstrap (no installer ISO). The base disk has no
# boot loader yet: qemu boots its kernel directly (-kernel/-initrd) and scripts/disk.sh grows
# the root partition to disk_size and installs GRUB, so the image boots by itself afterwards.
# Provisioned over SSH as root (locked again by scripts/cleanup.sh).

locals {
  direct_boot = [
    ["-kernel", "${var.base_dir}/vmlinuz"],
    ["-initrd", "${var.base_dir}/initrd.img"],
    ["-append", "root=/dev/vda1 ro console=ttyS0,115200 net.ifnames=1"],
  ]
}

source "qemu" "hcc-server" {
  iso_url          = "${var.base_dir}/debian-12-base.qcow2"
  iso_checksum     = "none"
  disk_image       = true
  accelerator      = var.accelerator
  cpus             = var.server_cpus
  memory           = var.server_memory_mib
  disk_size        = var.server_disk_size
  disk_interface   = "virtio"
  format           = "qcow2"
  net_device       = "virtio-net"
  headless         = true
  qemuargs         = concat(local.direct_boot, [["-serial", "file:${var.output_dir}/hcc-server-build.console.log"]])
  boot_wait        = "0s"
  ssh_username     = "root"
  ssh_password     = var.build_password
  ssh_timeout      = "20m"
  shutdown_command = "systemctl poweroff"
  output_directory = "${var.output_dir}/hcc-server-build"
  vm_name          = "hcc-server.qcow2"
}

source "qemu" "hcc-node" {
  iso_url              = "${var.base_dir}/debian-12-base.qcow2"
  iso_checksum         = "none"
  disk_image           = true
  accelerator          = var.accelerator
  cpus                 = var.node_cpus
  memory               = var.node_memory_mib
  disk_size            = var.node_disk_size
  disk_additional_size = [var.node_transfer_disk_size]
  disk_interface       = "virtio"
  format               = "qcow2"
  net_device           = "virtio-net"
  headless             = true
  qemuargs             = concat(local.direct_boot, [["-serial", "file:${var.output_dir}/hcc-node-build.console.log"]])
  boot_wait            = "0s"
  ssh_username         = "root"
  ssh_password         = var.build_password
  ssh_timeout          = "20m"
  shutdown_command     = "systemctl poweroff"
  output_directory     = "${var.output_dir}/hcc-node-build"
  vm_name              = "hcc-node.qcow2"
}
