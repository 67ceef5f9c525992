# hcc-node appliance: one per cloud; its second disk is the transfer storage.
# Build: make appliance (or packer build -only=hcc-node.qemu.hcc-node packer/).

build {
  name    = "hcc-node"
  sources = ["source.qemu.hcc-node"]

  provisioner "file" {
    sources     = ["${var.dist_dir}/hcc-${var.version}-py3-none-any.whl", "${path.root}/../requirements.lock"]
    destination = "/tmp/"
  }

  provisioner "file" {
    source      = var.build_ca_bundle
    destination = "/tmp/hcc-build-ca.crt"
  }

  provisioner "file" {
    source      = "${path.root}/files"
    destination = "/tmp/hcc-files"
  }

  provisioner "shell" {
    environment_vars = [
      "HCC_APPLIANCE=node",
      "HCC_WHEEL=/tmp/hcc-${var.version}-py3-none-any.whl",
      "HCC_LOCK=/tmp/requirements.lock",
      "HCC_FILES=/tmp/hcc-files",
      "PIP_CERT=/tmp/hcc-build-ca.crt",
    ]
    scripts = [
      "${path.root}/scripts/disk.sh",
      "${path.root}/scripts/base.sh",
      "${path.root}/scripts/install-hcc.sh",
      "${path.root}/scripts/node.sh",
      "${path.root}/scripts/cleanup.sh",
    ]
  }

  post-processor "shell-local" {
    inline = [
      "${var.python} -m firstboot.ova --kind node --version ${var.version} --cpus ${var.node_cpus} --memory-mib ${var.node_memory_mib} --out ${var.output_dir} ${var.output_dir}/hcc-node-build/hcc-node.qcow2 ${var.output_dir}/hcc-node-build/hcc-node.qcow2-1",
    ]
  }
}
