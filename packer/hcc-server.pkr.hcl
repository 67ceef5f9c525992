# hcc-server appliance: API, UI, task engine and the RabbitMQ broker the fleet talks through.
# Build: make appliance (or packer build -only=hcc-server.qemu.hcc-server packer/).

build {
  name    = "hcc-server"
  sources = ["source.qemu.hcc-server"]

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
      "HCC_APPLIANCE=server",
      "HCC_WHEEL=/tmp/hcc-${var.version}-py3-none-any.whl",
      "HCC_LOCK=/tmp/requirements.lock",
      "HCC_FILES=/tmp/hcc-files",
      "PIP_CERT=/tmp/hcc-build-ca.crt",
    ]
    scripts = [
      "${path.root}/scripts/disk.sh",
      "${path.root}/scripts/base.sh",
      "${path.root}/scripts/install-hcc.sh",
      "${path.root}/scripts/server.sh",
      "${path.root}/scripts/cleanup.sh",
    ]
  }

  post-processor "shell-local" {
    inline = [
      "${var.python} -m firstboot.ova --kind server --version ${var.version} --cpus ${var.server_cpus} --memory-mib ${var.server_memory_mib} --out ${var.output_dir} ${var.output_dir}/hcc-server-build/hcc-server.qcow2",
    ]
  }
}
