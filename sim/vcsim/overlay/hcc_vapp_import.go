// hcc overlay: import of a vApp (an OVF VirtualSystemCollection), which stock 0.24 lacks.
//
// CreateImportSpec answers a VirtualAppImportSpec with one VirtualMachineImportSpec per
// VirtualSystem (each made by the stock code path, entity name = the VirtualSystem's Name);
// file items are keyed "/<vm name>/<device>:<n>". ImportVApp with a VirtualAppImportSpec
// creates the vApp in the pool, each VM inside it, and one lease over all their files.
package simulator

import (
	"fmt"
	"net/url"
	"path"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/ovf"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

type hccCollectionEnvelope struct {
	References []ovf.File           `xml:"References>File"`
	Disk       *ovf.DiskSection     `xml:"DiskSection"`
	Network    *ovf.NetworkSection  `xml:"NetworkSection"`
	Collection *hccSystemCollection `xml:"VirtualSystemCollection"`
}

type hccSystemCollection struct {
	ID      string              `xml:"id,attr"`
	Name    *string             `xml:"Name"`
	Systems []ovf.VirtualSystem `xml:"VirtualSystem"`
}

func (m *OvfManager) hccCreateVAppImportSpec(ctx *Context, req *types.CreateImportSpec) soap.HasFault {
	body := new(methods.CreateImportSpecBody)
	var env hccCollectionEnvelope
	err := xml.NewDecoder(strings.NewReader(req.OvfDescriptor)).Decode(&env)
	if err == nil && (env.Collection == nil || len(env.Collection.Systems) == 0) {
		err = fmt.Errorf("OVF has neither a VirtualSystem nor a VirtualSystemCollection")
	}
	if err != nil {
		body.Fault_ = Fault(err.Error(), &types.InvalidArgument{InvalidProperty: "ovfDescriptor"})
		return body
	}
	vapp := &types.VirtualAppImportSpec{
		Name:             req.Cisp.EntityName,
		VAppConfigSpec:   NewVAppConfigSpec(),
		ResourcePoolSpec: types.DefaultResourceConfigSpec(),
	}
	result := types.OvfCreateImportSpecResult{ImportSpec: vapp}
	for i := range env.Collection.Systems {
		vs := env.Collection.Systems[i]
		name := vs.ID
		if vs.Name != nil && *vs.Name != "" {
			name = *vs.Name
		}
		sub := *req
		sub.Cisp.EntityName = name
		one := &ovf.Envelope{References: env.References, Disk: env.Disk, Network: env.Network, VirtualSystem: &vs}
		res := m.createImportSpec(ctx, &sub, one).(*methods.CreateImportSpecBody)
		if res.Fault_ != nil {
			body.Fault_ = res.Fault_
			return body
		}
		r := res.Res.Returnval
		vapp.Child = append(vapp.Child, r.ImportSpec)
		result.FileItem = append(result.FileItem, r.FileItem...)
		result.Error = append(result.Error, r.Error...)
		result.Warning = append(result.Warning, r.Warning...)
	}
	body.Res = &types.CreateImportSpecResponse{Returnval: result}
	return body
}

// hccAddImportDevices adds a device URL for every file-backed device of vm to the lease.
func hccAddImportDevices(lease *HttpNfcLease, vm *VirtualMachine) {
	device := object.VirtualDeviceList(vm.Config.Hardware.Device)
	ndevice := make(map[string]int)
	for _, d := range device {
		info, ok := d.GetVirtualDevice().Backing.(types.BaseVirtualDeviceFileBackingInfo)
		if !ok {
			continue
		}
		var file object.DatastorePath
		file.FromString(info.GetVirtualDeviceFileBackingInfo().FileName)
		name := vm.Self.Value + "-" + path.Base(file.Path)
		ds := vm.findDatastore(file.Datastore)
		lease.files[name] = path.Join(ds.Info.GetDatastoreInfo().Url, file.Path)

		_, disk := d.(*types.VirtualDisk)
		kind := device.Type(d)
		n := ndevice[kind]
		ndevice[kind]++

		lease.Info.DeviceUrl = append(lease.Info.DeviceUrl, types.HttpNfcLeaseDeviceUrl{
			Key:       fmt.Sprintf("/%s/%s:%d", vm.Self.Value, kind, n),
			ImportKey: fmt.Sprintf("/%s/%s:%d", vm.Name, kind, n),
			Url: (&url.URL{
				Scheme: "https",
				Host:   "*",
				Path:   nfcPrefix + path.Join(lease.Self.Value, name),
			}).String(),
			Disk:     types.NewBool(disk),
			TargetId: name,
		})
	}
}

func (p *ResourcePool) hccImportVApp(ctx *Context, req *types.ImportVApp, spec *types.VirtualAppImportSpec) soap.HasFault {
	body := new(methods.ImportVAppBody)
	res := p.CreateVApp(&types.CreateVApp{
		This:       p.Self,
		Name:       spec.Name,
		ResSpec:    spec.ResourcePoolSpec,
		ConfigSpec: spec.VAppConfigSpec,
		VmFolder:   req.Folder,
	})
	if f := res.Fault(); f != nil {
		body.Fault_ = f
		return body
	}
	ref := res.(*methods.CreateVAppBody).Res.Returnval
	vapp := ctx.Map.Get(ref).(*VirtualApp)
	lease := NewHttpNfcLease(ctx, ref)
	lease.Info.Lease = lease.Self
	for _, child := range spec.Child {
		vmSpec, ok := child.(*types.VirtualMachineImportSpec)
		if !ok {
			body.Fault_ = Fault("nested vApps are not supported", &types.InvalidArgument{InvalidProperty: "spec"})
			return body
		}
		created := vapp.CreateChildVMTask(ctx, &types.CreateChildVM_Task{
			This:   ref,
			Config: vmSpec.ConfigSpec,
			Host:   req.Host,
		})
		task := ctx.Map.Get(created.(*methods.CreateChildVM_TaskBody).Res.Returnval).(*Task)
		if task.Info.Error != nil {
			body.Fault_ = Fault("", task.Info.Error.Fault)
			return body
		}
		vm := ctx.Map.Get(task.Info.Result.(types.ManagedObjectReference)).(*VirtualMachine)
		hccAddImportDevices(lease, vm)
	}
	body.Res = &types.ImportVAppResponse{Returnval: lease.Self}
	return body
}
