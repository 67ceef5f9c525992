# Variables of both appliance templates (hcc-server.pkr.hcl, hcc-node.pkr.hcl).
# `make appliance` sets version from pyproject.toml; everything else has a default.

variable "version" {
  type        = string
  default     = "0.1.0"
  description = "hcc version: the wheel dist/hcc-<version>-py3-none-any.whl and the OVA names."
}

variable "base_dir" {
  type        = string
  default     = "build/appliance/base"
  description = "The Debian 12 base disk, its kernel and initrd (scripts/appliance-base.sh)."
}

variable "build_ca_bundle" {
  type        = string
  default     = "/etc/ssl/certs/ca-certificates.crt"
  description = "CA certificates pip trusts in the build VM (the build host's: a TLS-intercepting proxy works); removed from the image."
}

variable "dist_dir" {
  type        = string
  default     = "dist"
  description = "Where `make dist` put the wheel."
}

variable "output_dir" {
  type        = string
  default     = "build/appliance"
  description = "Build output: the qemu disks and the OVAs."
}

variable "python" {
  type        = string
  default     = ".venv/bin/python"
  description = "Python with hcc installed, on the build host: packs the OVA (python -m firstboot.ova)."
}

variable "accelerator" {
  type        = string
  default     = "kvm"
  description = "qemu accelerator: kvm, or tcg where there is no /dev/kvm (slow)."
}

variable "build_password" {
  type        = string
  default     = "hcc-build-only"
  description = "root password during the build only (scripts/appliance-base.sh sets it: HCC_BUILD_PASSWORD); the image leaves with root locked."
}

variable "server_cpus" {
  type    = number
  default = 2
}

variable "server_memory_mib" {
  type    = number
  default = 4096
}

variable "server_disk_size" {
  type        = string
  default     = "20G"
  description = "Server system disk: OS, database, RabbitMQ data, journal."
}

variable "node_cpus" {
  type    = number
  default = 2
}

variable "node_memory_mib" {
  type    = number
  default = 2048
}

variable "node_disk_size" {
  type        = string
  default     = "12G"
  description = "Node system disk: OS, job journal, journal logs."
}

variable "node_transfer_disk_size" {
  type        = string
  default     = "200G"
  description = "Node's second disk, its transfer storage (thin; grow it at deploy time, see docs/appliances.md)."
}
