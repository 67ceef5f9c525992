"""Deploy in vSphere: clone an imported VM or vApp next to it, power it on when asked
(blocking; the adapter runs it in a thread).

A VM is cloned with ``CloneVM_Task`` into its own folder and pool; a vApp (what a package with
a VirtualSystemCollection imports as, e.g. any vCD template) with ``CloneVApp_Task`` into its
parent pool, VMs in its VM folder, and started with ``PowerOnVApp_Task`` (each VM powered on
where the server lacks that call: vcsim).

Idempotent for a step resumed after a crash: every VM of a deploy carries
``hcc.deployedFrom = <source moref>`` in its extraConfig, and a deploy that finds its name
taken by a clone of the same source takes it up (and only powers it on when asked); anything
else of that name is a :class:`CloudConflict`.
"""

from __future__ import annotations

from typing import Any

import structlog

from protocol.messages import DeploySpec
from workers.clouds._vsphere_export import datacenter_of
from workers.clouds._vsphere_import import default_pool
from workers.clouds._vsphere_inventory import vapp_in
from workers.clouds._vsphere_session import vim, vmodl, wait_task
from workers.clouds.base import CloudConflict, DeployResult

log = structlog.get_logger()
MARK = "hcc.deployedFrom"


def _mark(source: Any) -> Any:
    return vim.option.OptionValue(key=MARK, value=str(source._moId))


def _marked(vm: Any, source: Any) -> bool:
    config = vm.config
    options = (config.extraConfig or ()) if config is not None else ()
    return any(o.key == MARK and o.value == str(source._moId) for o in options)


def deploy(si: Any, source: Any, spec: DeploySpec) -> DeployResult:
    if isinstance(source, vim.VirtualApp):
        return _deploy_vapp(si, source, spec)
    return _deploy_vm(si, source, spec)


def _deploy_vm(si: Any, source: Any, spec: DeploySpec) -> DeployResult:
    folder = source.parent
    vm = si.content.searchIndex.FindChild(folder, spec.name)
    if vm is None and vapp_in(si, folder, spec.name) is None:
        pool = source.resourcePool or default_pool(datacenter_of(source))
        clone = vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(pool=pool),
            powerOn=spec.power_on,
            template=False,
            config=vim.vm.ConfigSpec(extraConfig=[_mark(source)]),
        )
        vm = wait_task(source.CloneVM_Task(folder=folder, name=spec.name, spec=clone))
    elif isinstance(vm, vim.VirtualMachine) and _marked(vm, source):
        log.info("vsphere.deploy_taken_up", name=spec.name, id=vm._moId)
    else:
        raise CloudConflict(f"{spec.name!r} already exists in {folder.name}")
    if spec.power_on and vm.runtime.powerState != vim.VirtualMachinePowerState.poweredOn:
        wait_task(vm.PowerOnVM_Task())  # not every server honours CloneSpec.powerOn
    return DeployResult(str(vm._moId), spec.name, str(vm.runtime.powerState))


def _deploy_vapp(si: Any, source: Any, spec: DeploySpec) -> DeployResult:
    folder = source.parentFolder
    app = vapp_in(si, folder, spec.name)
    if app is None and si.content.searchIndex.FindChild(folder, spec.name) is None:
        vms = list(source.vm)
        store = next((d for v in vms for d in v.datastore), None)
        clone = vim.vApp.CloneSpec(location=store, vmFolder=folder)
        app = wait_task(source.CloneVApp_Task(name=spec.name, target=source.parent, spec=clone))
        for vm in app.vm:
            wait_task(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[_mark(source)])))
    elif app is not None and app.vm and all(_marked(vm, source) for vm in app.vm):
        log.info("vsphere.deploy_taken_up", name=spec.name, id=app._moId)
    else:
        raise CloudConflict(f"{spec.name!r} already exists in {folder.name}")
    on = vim.VirtualMachinePowerState.poweredOn
    if spec.power_on and any(vm.runtime.powerState != on for vm in app.vm):
        try:
            wait_task(app.PowerOnVApp_Task())
        except vmodl.fault.MethodNotFound:  # vcsim: no vApp power operations
            for vm in app.vm:
                if vm.runtime.powerState != on:
                    wait_task(vm.PowerOnVM_Task())
    states = {str(vm.runtime.powerState) for vm in app.vm}
    power = states.pop() if len(states) == 1 else "mixed"
    return DeployResult(str(app._moId), spec.name, power)
