package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/gridmap/gridmap/internal/membership"
	"github.com/gridmap/gridmap/internal/msgpackcheck"
	"github.com/gridmap/gridmap/internal/transport"
	"github.com/gridmap/gridmap/partition"
)

// msgKeyring changes or lists a member's gossip keys (cluster-wide key rotation).
const msgKeyring transport.MsgType = 47

// KeyOp is a gossip key operation.
type KeyOp uint8

// Gossip key operations, in the order of a rotation.
const (
	KeyList    KeyOp = 0 // list the key IDs
	KeyInstall KeyOp = 1 // add a key for decryption
	KeyUse     KeyOp = 2 // install if needed, then encrypt with it
	KeyRemove  KeyOp = 3 // remove a key (not the primary one)
)

type keyReq struct {
	Op  KeyOp  `msgpack:"o"`
	Key []byte `msgpack:"k,omitempty"`
}

type keyResp struct {
	IDs []string `msgpack:"i,omitempty"`
	Err string   `msgpack:"e,omitempty"`
}

// keyOpTimeout bounds a key operation on one member, so that a member that died but is still
// listed alive fails the call instead of holding it until ctx ends.
const keyOpTimeout = 10 * time.Second

// ErrKeyRotation wraps the failures of a cluster-wide key operation on some members.
var ErrKeyRotation = errors.New("control: gossip key operation failed on some members")

func (n *Node) registerKeyring() {
	n.deps.Server.Handle(msgKeyring, transport.HandlerFunc(func(ctx context.Context, m transport.Message) (transport.Message, error) {
		var r keyReq
		if err := msgpackcheck.Unmarshal(m.Header, &r); err != nil || r.Op > KeyRemove {
			return transport.Message{}, &transport.RemoteError{Code: transport.CodeMalformed, Message: "control: malformed key request"}
		}
		var resp keyResp
		ids, err := n.localKeyOp(r.Op, r.Key)
		resp.IDs = ids
		if err != nil {
			resp.Err = err.Error()
		}
		h, err := msgpack.Marshal(&resp)
		if err != nil {
			return transport.Message{}, err
		}
		return transport.Message{Type: msgKeyring, Header: h}, nil
	}))
}

// localKeyOp applies op to this member's keyring and returns its key IDs.
func (n *Node) localKeyOp(op KeyOp, key []byte) ([]string, error) {
	var err error
	switch op {
	case KeyInstall:
		err = n.ml.InstallKey(key)
	case KeyUse:
		if err = n.ml.InstallKey(key); err == nil {
			err = n.ml.UseKey(key)
		}
	case KeyRemove:
		err = n.ml.RemoveKey(key)
	}
	if err == nil && n.ml.KeyIDs() == nil {
		err = membership.ErrNoKeyring
	}
	if err == nil && op != KeyList {
		n.log.Info("control: gossip key changed", "op", op, "key_id", membership.KeyID(key))
	}
	return n.ml.KeyIDs(), err
}

// KeyOpAll applies op to the keyring of every member alive in this member's gossip view, this
// one included, concurrently, and returns each member's key IDs afterwards (primary first). It
// fails with an error wrapping ErrKeyRotation, naming every member that failed, when any did;
// the members that succeeded keep the change, and repeating the call is safe (every operation
// is idempotent, except removing the primary key, which always fails).
func (n *Node) KeyOpAll(ctx context.Context, op KeyOp, key []byte) (map[partition.MemberID][]string, error) {
	hdr, err := msgpack.Marshal(&keyReq{Op: op, Key: key})
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		out  = map[partition.MemberID][]string{}
		errs []error
		wg   sync.WaitGroup
	)
	record := func(id partition.MemberID, ids []string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if ids != nil {
			out[id] = ids
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("member %s: %w", id, err))
		}
	}
	for _, m := range n.ml.Alive() {
		id := partition.MemberID(m.ID)
		if id == n.cfg.ID {
			ids, err := n.localKeyOp(op, key)
			record(id, ids, err)
			continue
		}
		wg.Go(func() {
			resp, err := n.deps.Client.CallTimeout(ctx, m.TransportAddr, transport.Message{Type: msgKeyring, Header: hdr}, keyOpTimeout)
			if err != nil {
				record(id, nil, err)
				return
			}
			var r keyResp
			if err := msgpackcheck.Unmarshal(resp.Header, &r); err != nil {
				record(id, nil, fmt.Errorf("malformed key response: %w", err))
				return
			}
			if r.Err != "" {
				err = errors.New(r.Err)
			}
			record(id, r.IDs, err)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return out, fmt.Errorf("%w: %w", ErrKeyRotation, errors.Join(errs...))
	}
	return out, nil
}

func (o KeyOp) String() string {
	switch o {
	case KeyList:
		return "list"
	case KeyInstall:
		return "install"
	case KeyUse:
		return "use"
	case KeyRemove:
		return "remove"
	}
	return fmt.Sprintf("KeyOp(%d)", uint8(o))
}
