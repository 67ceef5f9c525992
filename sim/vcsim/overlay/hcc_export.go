// hcc overlay: OVF export for govmomi's simulator (stock 0.24 answers MethodNotFound).
//
// VirtualMachine.ExportVm and VirtualApp.ExportVApp return an HttpNfcLease whose device URLs
// serve the disks' datastore files (GET, see simulator.patch), one URL per virtual disk,
// keyed like vCenter does: "/<vm moref>/<controller type><bus>:<unit>". Like vCenter they
// refuse a VM that is not powered off (InvalidPowerState). HttpNfcLeaseGetManifest returns
// SHA-1, size and capacity per disk.
package simulator

import (
	"crypto/sha1" // #nosec: the vSphere API defines this manifest with SHA-1
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"reflect"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// hccDeviceKey is the export device id of a disk: "/vm-42/VirtualLsiLogicController0:0".
func hccDeviceKey(vm *VirtualMachine, devices object.VirtualDeviceList, disk *types.VirtualDisk) string {
	kind, bus := "VirtualController", int32(0)
	if c := devices.FindByKey(disk.ControllerKey); c != nil {
		kind = reflect.TypeOf(c).Elem().Name()
		if bc, ok := c.(types.BaseVirtualController); ok {
			bus = bc.GetVirtualController().BusNumber
		}
	}
	unit := int32(0)
	if disk.UnitNumber != nil {
		unit = *disk.UnitNumber
	}
	return fmt.Sprintf("/%s/%s%d:%d", vm.Self.Value, kind, bus, unit)
}

// hccDiskFile is the local path of a disk's backing file.
func hccDiskFile(vm *VirtualMachine, disk *types.VirtualDisk) (string, bool) {
	info, ok := disk.Backing.(types.BaseVirtualDeviceFileBackingInfo)
	if !ok {
		return "", false
	}
	var p object.DatastorePath
	if !p.FromString(info.GetVirtualDeviceFileBackingInfo().FileName) {
		return "", false
	}
	ds := vm.findDatastore(p.Datastore)
	return path.Join(ds.Info.GetDatastoreInfo().Url, p.Path), true
}

func hccPoweredOff(vm *VirtualMachine) *soap.Fault {
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOff {
		return nil
	}
	return Fault(fmt.Sprintf("%s is %s; export needs it powered off", vm.Name, vm.Runtime.PowerState),
		&types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff,
			ExistingState:  vm.Runtime.PowerState,
		})
}

// hccAddExportDevices adds one device URL per virtual disk of vm to the lease.
func hccAddExportDevices(lease *HttpNfcLease, vm *VirtualMachine, prefix string) {
	devices := object.VirtualDeviceList(vm.Config.Hardware.Device)
	n := 0
	for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		disk := d.(*types.VirtualDisk)
		file, ok := hccDiskFile(vm, disk)
		if !ok {
			continue
		}
		name := fmt.Sprintf("%sdisk-%d.vmdk", prefix, n)
		n++
		lease.files[name] = file
		lease.Info.TotalDiskCapacityInKB += getDiskSize(disk) / 1024
		lease.Info.DeviceUrl = append(lease.Info.DeviceUrl, types.HttpNfcLeaseDeviceUrl{
			Key:       hccDeviceKey(vm, devices, disk),
			ImportKey: hccDeviceKey(vm, devices, disk),
			Url: (&url.URL{
				Scheme: "https",
				Host:   "*",
				Path:   nfcPrefix + path.Join(lease.Self.Value, name),
			}).String(),
			Disk:     types.NewBool(true),
			TargetId: name,
		})
	}
}

// ExportVm starts an export lease for a powered-off VM or template.
func (vm *VirtualMachine) ExportVm(ctx *Context, req *types.ExportVm) soap.HasFault {
	body := new(methods.ExportVmBody)
	if fault := hccPoweredOff(vm); fault != nil {
		body.Fault_ = fault
		return body
	}
	lease := NewHttpNfcLease(ctx, vm.Self)
	lease.Info.Lease = lease.Self
	hccAddExportDevices(lease, vm, "")
	body.Res = &types.ExportVmResponse{Returnval: lease.Self}
	return body
}

// ExportVApp starts an export lease for every VM of a vApp (all must be powered off).
func (a *VirtualApp) ExportVApp(ctx *Context, req *types.ExportVApp) soap.HasFault {
	body := new(methods.ExportVAppBody)
	var vms []*VirtualMachine
	for _, ref := range a.Vm {
		vm, ok := ctx.Map.Get(ref).(*VirtualMachine)
		if !ok {
			continue
		}
		if fault := hccPoweredOff(vm); fault != nil {
			body.Fault_ = fault
			return body
		}
		vms = append(vms, vm)
	}
	lease := NewHttpNfcLease(ctx, a.Self)
	lease.Info.Lease = lease.Self
	for _, vm := range vms {
		hccAddExportDevices(lease, vm, vm.Self.Value+"-")
	}
	body.Res = &types.ExportVAppResponse{Returnval: lease.Self}
	return body
}

// HttpNfcLeaseGetManifest returns SHA-1 and size of every file of the lease.
func (l *HttpNfcLease) HttpNfcLeaseGetManifest(ctx *Context, req *types.HttpNfcLeaseGetManifest) soap.HasFault {
	body := new(methods.HttpNfcLeaseGetManifestBody)
	var entries []types.HttpNfcLeaseManifestEntry
	for _, du := range l.Info.DeviceUrl {
		file, ok := l.files[path.Base(du.Url)]
		if !ok {
			continue
		}
		sum, size, err := hccSha1File(file)
		if err != nil {
			body.Fault_ = Fault(err.Error(), &types.FileFault{File: file})
			return body
		}
		entries = append(entries, types.HttpNfcLeaseManifestEntry{
			Key:  du.Key,
			Sha1: sum,
			Size: size,
			Disk: du.Disk != nil && *du.Disk,
		})
	}
	body.Res = &types.HttpNfcLeaseGetManifestResponse{Returnval: entries}
	return body
}

func hccSha1File(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha1.New() // #nosec
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
