// hcc overlay: OvfManager.CreateDescriptor for govmomi's simulator (stock 0.24 lacks it).
//
// Writes an OVF 1.0 envelope for a VM (VirtualSystem) or a vApp (VirtualSystemCollection):
// References from the caller's OvfFiles (deviceId = the export lease's deviceUrl.key, with
// the exported sizes), a DiskSection with capacities in bytes, a NetworkSection and one
// VirtualHardwareSection per VM (CPUs, memory, IDE/SCSI controllers, disks, CD-ROMs, NICs).
// An OvfFile whose deviceId matches no disk is reported in the result's Error list.
package simulator

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

const hccStreamOptimized = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

type hccOvfWriter struct {
	ctx      *Context
	files    map[string]types.OvfFile
	used     map[string]bool
	refs     strings.Builder
	disks    strings.Builder
	systems  strings.Builder
	networks []string
	nfile    int
}

func hccEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), `"`, "&quot;")
}

// item writes one rasd Item with its elements in schema (alphabetical) order.
func (w *hccOvfWriter) item(b *strings.Builder, fields map[string]string, extra ...string) {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("      <Item>\n")
	for _, k := range keys {
		fmt.Fprintf(b, "        <rasd:%s>%s</rasd:%s>\n", k, hccEscape(fields[k]), k)
	}
	for _, e := range extra {
		b.WriteString(e)
	}
	b.WriteString("      </Item>\n")
}

func (w *hccOvfWriter) network(d types.BaseVirtualDevice) string {
	switch b := d.GetVirtualDevice().Backing.(type) {
	case *types.VirtualEthernetCardNetworkBackingInfo:
		return b.DeviceName
	case *types.VirtualEthernetCardDistributedVirtualPortBackingInfo:
		ref := types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: b.Port.PortgroupKey}
		if pg, ok := w.ctx.Map.Get(ref).(*DistributedVirtualPortgroup); ok {
			return pg.Name
		}
	}
	return ""
}

func (w *hccOvfWriter) addNetwork(name string) {
	for _, n := range w.networks {
		if n == name {
			return
		}
	}
	w.networks = append(w.networks, name)
}

func (w *hccOvfWriter) disk(b *strings.Builder, vm *VirtualMachine, devices object.VirtualDeviceList,
	disk *types.VirtualDisk, id string, parent string) {
	w.nfile++
	diskID := fmt.Sprintf("vmdisk%d", w.nfile)
	key := hccDeviceKey(vm, devices, disk)
	fileRef := ""
	if f, ok := w.files[key]; ok {
		w.used[key] = true
		fileID := fmt.Sprintf("file%d", w.nfile)
		fileRef = fmt.Sprintf(` ovf:fileRef="%s"`, fileID)
		fmt.Fprintf(&w.refs, "    <File ovf:href=\"%s\" ovf:id=\"%s\" ovf:size=\"%d\"/>\n",
			hccEscape(f.Path), fileID, f.Size)
		if f.PopulatedSize > 0 {
			fileRef += fmt.Sprintf(` ovf:populatedSize="%d"`, f.PopulatedSize)
		}
	}
	fmt.Fprintf(&w.disks, "    <Disk ovf:capacity=\"%d\" ovf:capacityAllocationUnits=\"byte\" ovf:diskId=\"%s\"%s ovf:format=\"%s\"/>\n",
		getDiskSize(disk), diskID, fileRef, hccStreamOptimized)
	unit := int32(0)
	if disk.UnitNumber != nil {
		unit = *disk.UnitNumber
	}
	w.item(b, map[string]string{
		"AddressOnParent": fmt.Sprint(unit),
		"ElementName":     fmt.Sprintf("Hard disk %d", w.nfile),
		"HostResource":    "ovf:/disk/" + diskID,
		"InstanceID":      id,
		"Parent":          parent,
		"ResourceType":    "17",
	})
}

// hccControllerItem returns the rasd fields of a controller, or nil for other devices.
func hccControllerItem(devices object.VirtualDeviceList, d types.BaseVirtualDevice, id string) map[string]string {
	switch c := d.(type) {
	case *types.VirtualIDEController:
		return map[string]string{"Address": fmt.Sprint(c.BusNumber), "ElementName": fmt.Sprintf("IDE %d", c.BusNumber),
			"InstanceID": id, "ResourceType": "5"}
	case types.BaseVirtualSCSIController:
		sub := devices.Type(d)
		if sub == "pvscsi" {
			sub = "VirtualSCSI"
		}
		bus := c.GetVirtualSCSIController().BusNumber
		return map[string]string{"Address": fmt.Sprint(bus), "ElementName": fmt.Sprintf("SCSI controller %d", bus),
			"InstanceID": id, "ResourceSubType": sub, "ResourceType": "6"}
	}
	return nil
}

func (w *hccOvfWriter) virtualSystem(vm *VirtualMachine, indent string) {
	b := &w.systems
	hw := vm.Config.Hardware
	devices := object.VirtualDeviceList(hw.Device)
	fmt.Fprintf(b, "%s<VirtualSystem ovf:id=\"%s\">\n", indent, hccEscape(vm.Name))
	fmt.Fprintf(b, "    <Info>A virtual machine</Info>\n    <Name>%s</Name>\n", hccEscape(vm.Name))
	fmt.Fprintf(b, "    <OperatingSystemSection ovf:id=\"1\" vmw:osType=\"%s\">\n      <Info>The kind of installed guest operating system</Info>\n    </OperatingSystemSection>\n",
		hccEscape(vm.Config.GuestId))
	b.WriteString("    <VirtualHardwareSection>\n      <Info>Virtual hardware requirements</Info>\n      <System>\n")
	fmt.Fprintf(b, "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>\n        <vssd:InstanceID>0</vssd:InstanceID>\n        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>\n        <vssd:VirtualSystemType>%s</vssd:VirtualSystemType>\n      </System>\n",
		hccEscape(vm.Name), hccEscape(vm.Config.Version))
	w.item(b, map[string]string{"AllocationUnits": "hertz * 10^6", "Description": "Number of Virtual CPUs",
		"ElementName": fmt.Sprintf("%d virtual CPU(s)", hw.NumCPU), "InstanceID": "1",
		"ResourceType": "3", "VirtualQuantity": fmt.Sprint(hw.NumCPU)})
	w.item(b, map[string]string{"AllocationUnits": "byte * 2^20", "Description": "Memory Size",
		"ElementName": fmt.Sprintf("%dMB of memory", hw.MemoryMB), "InstanceID": "2",
		"ResourceType": "4", "VirtualQuantity": fmt.Sprint(hw.MemoryMB)})
	ids := map[int32]string{}
	ncd, nnic := 0, 0
	next := 3
	newID := func() string { next++; return fmt.Sprint(next - 1) }
	for _, d := range devices { // controllers first: disks and drives refer to them
		id := fmt.Sprint(next)
		if fields := hccControllerItem(devices, d, id); fields != nil {
			ids[d.GetVirtualDevice().Key] = newID()
			w.item(b, fields)
		}
	}
	for _, d := range devices {
		dev := d.GetVirtualDevice()
		unit := int32(0)
		if dev.UnitNumber != nil {
			unit = *dev.UnitNumber
		}
		switch x := d.(type) {
		case *types.VirtualDisk:
			w.disk(b, vm, devices, x, newID(), ids[dev.ControllerKey])
		case *types.VirtualCdrom:
			if parent, ok := ids[dev.ControllerKey]; ok {
				ncd++
				w.item(b, map[string]string{"AddressOnParent": fmt.Sprint(unit), "AutomaticAllocation": "false",
					"ElementName": fmt.Sprintf("CD/DVD drive %d", ncd), "InstanceID": newID(), "Parent": parent,
					"ResourceSubType": "vmware.cdrom.remotepassthrough", "ResourceType": "15"})
			}
		case types.BaseVirtualEthernetCard:
			net := w.network(d)
			w.addNetwork(net)
			nnic++
			sub := strings.TrimPrefix(reflect.TypeOf(d).Elem().Name(), "Virtual") // E1000, Vmxnet3
			w.item(b, map[string]string{"AddressOnParent": fmt.Sprint(unit), "AutomaticAllocation": "true",
				"Connection": net, "ElementName": fmt.Sprintf("Network adapter %d", nnic), "InstanceID": newID(),
				"ResourceSubType": sub, "ResourceType": "10"})
		}
	}
	fmt.Fprintf(b, "    </VirtualHardwareSection>\n%s</VirtualSystem>\n", indent)
}

func (w *hccOvfWriter) envelope(name string, collection bool) string {
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString(`<Envelope vmw:buildId="build-hcc-vcsim" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` + "\n")
	fmt.Fprintf(&b, "  <References>\n%s  </References>\n", w.refs.String())
	fmt.Fprintf(&b, "  <DiskSection>\n    <Info>Virtual disk information</Info>\n%s  </DiskSection>\n", w.disks.String())
	b.WriteString("  <NetworkSection>\n    <Info>The list of logical networks</Info>\n")
	for _, n := range w.networks {
		fmt.Fprintf(&b, "    <Network ovf:name=\"%s\">\n      <Description>The %s network</Description>\n    </Network>\n", hccEscape(n), hccEscape(n))
	}
	b.WriteString("  </NetworkSection>\n")
	if collection {
		fmt.Fprintf(&b, "  <VirtualSystemCollection ovf:id=\"%s\">\n    <Info>A vApp</Info>\n    <Name>%s</Name>\n%s  </VirtualSystemCollection>\n",
			hccEscape(name), hccEscape(name), w.systems.String())
	} else {
		b.WriteString(w.systems.String())
	}
	b.WriteString("</Envelope>\n")
	return b.String()
}

// CreateDescriptor writes the OVF descriptor of a VM or vApp for the given exported files.
func (m *OvfManager) CreateDescriptor(ctx *Context, req *types.CreateDescriptor) soap.HasFault {
	body := new(methods.CreateDescriptorBody)
	w := &hccOvfWriter{ctx: ctx, files: map[string]types.OvfFile{}, used: map[string]bool{}}
	for _, f := range req.Cdp.OvfFiles {
		w.files[f.DeviceId] = f
	}
	var name string
	collection := false
	switch obj := ctx.Map.Get(req.Obj).(type) {
	case *VirtualMachine:
		name = obj.Name
		w.virtualSystem(obj, "  ")
	case *VirtualApp:
		name, collection = obj.Name, true
		for _, ref := range obj.Vm {
			if vm, ok := ctx.Map.Get(ref).(*VirtualMachine); ok {
				w.virtualSystem(vm, "  ")
			}
		}
	default:
		body.Fault_ = Fault("", &types.ManagedObjectNotFound{Obj: req.Obj})
		return body
	}
	if req.Cdp.Name != "" {
		name = req.Cdp.Name
	}
	result := types.OvfCreateDescriptorResult{OvfDescriptor: w.envelope(name, collection)}
	for key := range w.files {
		if !w.used[key] {
			result.Error = append(result.Error, types.LocalizedMethodFault{
				Fault:            &types.InvalidArgument{InvalidProperty: "cdp.ovfFiles"},
				LocalizedMessage: fmt.Sprintf("no device with id %s", key),
			})
		}
	}
	body.Res = &types.CreateDescriptorResponse{Returnval: result}
	return body
}
