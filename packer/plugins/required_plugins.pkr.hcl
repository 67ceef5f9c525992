# For Packer >= 1.10, where the qemu builder is a separate plugin. Packer 1.6.6 (Debian 12's,
# the one the tests run) does not know this block, so it lives outside packer/ and
# `packer validate packer/` does not read it. With a newer Packer:
#   cp packer/plugins/required_plugins.pkr.hcl packer/ && packer init packer/
packer {
  required_version = ">= 1.6.6"
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
  }
}
