package daemon

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/groupstate"
	"github.com/meshnode/meshnode/keymgmt"
	"github.com/meshnode/meshnode/node"
)

// managedRoutes: managed groups — creation, key packages, adding,
// removing and changing members, managers, hosts, leaving, rotation,
// policy and splits (issue 4).
func (s *server) managedRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathManagedGroups, methods{http.MethodPost: s.createManaged})
	s.handle(mux, api.PathKeyPackages, methods{http.MethodGet: s.listKeyPackages, http.MethodPost: s.newKeyPackage})
	s.handle(mux, api.PathGroupAdd, methods{http.MethodPost: s.addMember})
	s.handle(mux, api.PathGroupMember, methods{http.MethodDelete: s.removeMember})
	s.handle(mux, api.PathGroupMemberRole, methods{http.MethodPut: s.setRole})
	s.handle(mux, api.PathGroupRotate, methods{http.MethodPost: s.rotate})
	s.handle(mux, api.PathGroupPolicy, methods{http.MethodGet: s.getPolicy, http.MethodPut: s.setPolicy})
	s.handle(mux, api.PathGroupSplits, methods{http.MethodGet: s.getSplits})
	s.handle(mux, api.PathGroupManagers, methods{http.MethodPost: s.addManager})
	s.handle(mux, api.PathGroupTransfer, methods{http.MethodPost: s.transferManager})
	s.handle(mux, api.PathGroupHosts, methods{http.MethodGet: s.getHosts, http.MethodPut: s.setHosts})
	s.handle(mux, api.PathGroupLeave, methods{http.MethodPost: s.leave})
}

// managedCallTimeout bounds a management call: a rotation of a large
// group seals to every member and posts several envelopes.
const managedCallTimeout = nodeCallTimeout

func (s *server) createManaged(w http.ResponseWriter, r *http.Request) error {
	var req api.CreateManagedRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	p := groupstate.DefaultPolicy()
	if req.History != "" {
		h, err := groupstate.ParseHistoryMode(req.History)
		if err != nil {
			return errorf(api.CodeBadRequest, "%v", err)
		}
		p.History = h
	}
	if req.RotateEvery != "" {
		d, err := parseDuration("rotate_every", req.RotateEvery)
		if err != nil {
			return err
		}
		p.RotateEvery = d
	}
	p.RotateAfter = req.RotateAfter
	ctx, cancel := context.WithTimeout(r.Context(), managedCallTimeout)
	defer cancel()
	g, _, err := s.d.node.CreateGroup(ctx, req.Name, req.Hosts, node.Managed(p))
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusCreated, api.CreatedGroup{Group: groupInfo(g)})
	return nil
}

func (s *server) newKeyPackage(w http.ResponseWriter, r *http.Request) error {
	var req api.NewKeyPackageRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := parseDuration("ttl", req.TTL)
		if err != nil {
			return err
		}
		ttl = d
	}
	ctx, cancel := context.WithTimeout(r.Context(), nodeCallTimeout)
	defer cancel()
	kp, err := s.d.node.NewKeyPackage(ctx, ttl, req.Hosts)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusCreated, keyPackage(kp))
	return nil
}

func (s *server) listKeyPackages(w http.ResponseWriter, _ *http.Request) error {
	kps, err := s.d.node.KeyPackages()
	if err != nil {
		return apiError(err)
	}
	out := make([]api.KeyPackage, 0, len(kps))
	for i := range kps {
		out = append(out, keyPackage(&kps[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func keyPackage(kp *node.KeyPackageInfo) api.KeyPackage {
	out := api.KeyPackage(*kp)
	if out.Hosts == nil {
		out.Hosts = []string{}
	}
	return out
}

func (s *server) addMember(w http.ResponseWriter, r *http.Request) error {
	var req api.AddMemberRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	role, err := parseRole(req.Role)
	if err != nil {
		return err
	}
	var opts []node.ManageOption
	if req.Bot {
		opts = append(opts, node.AsBot())
	}
	if req.ViaBot {
		opts = append(opts, node.ViaBot())
	}
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return s.d.node.AddMember(ctx, r.PathValue("group"), strings.TrimSpace(req.KeyPackage), role, opts...)
	})
}

func (s *server) removeMember(w http.ResponseWriter, r *http.Request) error {
	var req api.ManageRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	fp, err := parseFingerprint(r.PathValue("fingerprint"))
	if err != nil {
		return err
	}
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return s.d.node.RemoveMember(ctx, r.PathValue("group"), fp, viaBot(req.ViaBot)...)
	})
}

func (s *server) setRole(w http.ResponseWriter, r *http.Request) error {
	var req api.SetRoleRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	role, err := parseRole(req.Role)
	if err != nil {
		return err
	}
	fp, err := parseFingerprint(r.PathValue("fingerprint"))
	if err != nil {
		return err
	}
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return s.d.node.SetRole(ctx, r.PathValue("group"), fp, role, viaBot(req.ViaBot)...)
	})
}

func (s *server) rotate(w http.ResponseWriter, r *http.Request) error {
	var req api.ManageRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return s.d.node.Rotate(ctx, r.PathValue("group"), viaBot(req.ViaBot)...)
	})
}

func (s *server) getPolicy(w http.ResponseWriter, r *http.Request) error {
	p, err := s.d.node.GroupPolicy(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	out := api.Policy{History: p.History.String(), RotateAfter: p.RotateAfter}
	if p.RotateEvery > 0 {
		out.RotateEvery = p.RotateEvery.String()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) setPolicy(w http.ResponseWriter, r *http.Request) error {
	var req api.PolicyRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var ch node.PolicyChange
	if req.History != nil {
		h, err := groupstate.ParseHistoryMode(*req.History)
		if err != nil {
			return errorf(api.CodeBadRequest, "%v", err)
		}
		ch.History = &h
	}
	if req.RotateEvery != nil {
		d, err := parseDuration("rotate_every", *req.RotateEvery)
		if err != nil {
			return err
		}
		ch.RotateEvery = &d
	}
	ch.RotateAfter = req.RotateAfter
	if ch == (node.PolicyChange{}) {
		return errorf(api.CodeBadRequest, "nothing to change: set history, rotate_every or rotate_after")
	}
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return s.d.node.SetPolicy(ctx, r.PathValue("group"), ch, viaBot(req.ViaBot)...)
	})
}

func (s *server) getSplits(w http.ResponseWriter, r *http.Request) error {
	ss, err := s.d.node.Splits(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	out := make([]api.Split, 0, len(ss))
	for _, sp := range ss {
		out = append(out, api.Split(sp))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *server) addManager(w http.ResponseWriter, r *http.Request) error {
	return s.managerCall(w, r, s.d.node.AddManager)
}

func (s *server) transferManager(w http.ResponseWriter, r *http.Request) error {
	return s.managerCall(w, r, s.d.node.TransferManager)
}

// managerCall runs AddManager or TransferManager for the member a
// ManagerRequest names.
func (s *server) managerCall(w http.ResponseWriter, r *http.Request,
	op func(ctx context.Context, group, fingerprint string, opts ...node.ManageOption) (*node.ManageResult, error)) error {
	var req api.ManagerRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	fp, err := parseFingerprint(req.Fingerprint)
	if err != nil {
		return err
	}
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return op(ctx, r.PathValue("group"), fp, viaBot(req.ViaBot)...)
	})
}

func (s *server) getHosts(w http.ResponseWriter, r *http.Request) error {
	hosts, err := s.d.node.GroupHosts(r.PathValue("group"))
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.GroupHosts{Hosts: hosts})
	return nil
}

func (s *server) setHosts(w http.ResponseWriter, r *http.Request) error {
	var req api.SetHostsRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return s.d.node.SetHosts(ctx, r.PathValue("group"), req.Hosts, viaBot(req.ViaBot)...)
	})
}

func (s *server) leave(w http.ResponseWriter, r *http.Request) error {
	return s.manageCall(w, r, func(ctx context.Context) (*node.ManageResult, error) {
		return s.d.node.LeaveGroup(ctx, r.PathValue("group"))
	})
}

// manageCall runs a management call within its time limit and answers
// with its result.
func (s *server) manageCall(w http.ResponseWriter, r *http.Request, fn func(ctx context.Context) (*node.ManageResult, error)) error {
	ctx, cancel := context.WithTimeout(r.Context(), managedCallTimeout)
	defer cancel()
	res, err := fn(ctx)
	if err != nil {
		return apiError(err)
	}
	out := api.ManageResult(*res)
	if out.Events == nil {
		out.Events = []string{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func viaBot(v bool) []node.ManageOption {
	if v {
		return []node.ManageOption{node.ViaBot()}
	}
	return nil
}

func parseRole(s string) (groupstate.Role, error) {
	role, err := groupstate.ParseRole(s)
	if err != nil {
		return 0, errorf(api.CodeBadRequest, "role %q: use read, write or manage", s)
	}
	return role, nil
}

func parseFingerprint(s string) (string, error) {
	fp, err := keymgmt.ParseFingerprint(s)
	if err != nil {
		return "", errorf(api.CodeBadRequest, "fingerprint: %v (copy it from `meshnode group members`)", err)
	}
	return fp, nil
}

// parseDuration reads a Go duration ("90s", "24h"; "0" for none).
func parseDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, errorf(api.CodeBadRequest, "%s %q is not a duration such as 90m or 24h", field, v)
	}
	return d, nil
}
