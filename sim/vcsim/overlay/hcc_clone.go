// hcc overlay: CloneVM_Task copies disk content (stock 0.24 creates empty disks, and also
// rewrote the source VM's own disk backing; see simulator.patch).
package simulator

import (
	"io"
	"os"
	"path"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// hccCopyDisks copies each source disk file (datastore paths, in device order) into the
// clone's disk of the same position.
func hccCopyDisks(src, dst *VirtualMachine, sources []string) types.BaseMethodFault {
	disks := object.VirtualDeviceList(dst.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
	for i, name := range sources {
		var p object.DatastorePath
		if i >= len(disks) || !p.FromString(name) {
			continue
		}
		from := path.Join(src.findDatastore(p.Datastore).Info.GetDatastoreInfo().Url, p.Path)
		to, ok := hccDiskFile(dst, disks[i].(*types.VirtualDisk))
		if !ok {
			continue
		}
		if err := hccCopyFile(from, to); err != nil {
			return &types.FileFault{File: to}
		}
	}
	return nil
}

func hccCopyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0600)
	if err != nil {
		return err
	}
	if _, err = io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
