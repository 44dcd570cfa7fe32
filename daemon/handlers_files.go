package daemon

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/api"
	"github.com/meshnode/meshnode/node"
)

// fileTransferTimeout bounds one upload or download of a file (a 100 MiB
// file relayed chunk by chunk to the group's hosts).
const fileTransferTimeout = 30 * time.Minute

// fileRoutes: send a file, fetch and check one, read its bytes (issue 18).
func (s *server) fileRoutes(mux *http.ServeMux) {
	s.handle(mux, api.PathGroupFiles, methods{http.MethodPost: s.sendFile})
	s.handle(mux, api.PathMessageDownload, methods{http.MethodPost: s.download})
	s.handle(mux, api.PathMessageFile, methods{http.MethodGet: s.getFile})
}

// isFileUpload reports a request whose body is a file's bytes.
func isFileUpload(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/"+api.Version+"/groups/") && strings.HasSuffix(r.URL.Path, "/files")
}

// longTransfer lifts the server's read and write timeouts for one request.
func longTransfer(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(fileTransferTimeout)
	_ = rc.SetReadDeadline(deadline)
	_ = rc.SetWriteDeadline(deadline)
}

func (s *server) sendFile(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	name := q.Get("name")
	if name == "" {
		return errorf(api.CodeBadRequest, "the file has no name (?name=)")
	}
	if r.ContentLength < 0 {
		return errorf(api.CodeBadRequest, "a file needs its Content-Length")
	}
	longTransfer(w)
	ctx, cancel := context.WithTimeout(r.Context(), fileTransferTimeout)
	defer cancel()
	res, err := s.d.node.SendFile(ctx, r.PathValue("group"), name, q.Get("type"), r.Body, r.ContentLength)
	if err != nil {
		return apiError(err)
	}
	writeJSON(w, http.StatusOK, api.SendResult(*res))
	return nil
}

func (s *server) download(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	fi, err := s.d.node.File(id)
	if err != nil {
		return apiError(err)
	}
	longTransfer(w)
	sw, err := stream(w)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), fileTransferTimeout)
	defer cancel()
	res, err := s.d.node.Download(ctx, id, func(p node.FileProgress) {
		_ = sw.Send(api.DownloadProgress{Held: p.Held, Chunks: p.Chunks})
	})
	if err != nil {
		var ae *api.Error
		if !errors.As(apiError(err), &ae) {
			s.log.Error("download failed", "err", err)
			ae = errorf(api.CodeInternal, "the download failed (see the daemon's log)")
		}
		_ = sw.Fail(ae)
		return nil
	}
	info := apiFileInfo(fi)
	chunks := int((fi.Size + uint64(node.ChunkData) - 1) / uint64(node.ChunkData))
	_ = sw.Send(api.DownloadProgress{Held: max(chunks, 1), Chunks: max(chunks, 1), Done: true, ID: res.ID, File: info, Fetched: res.Fetched, Failed: res.Failed})
	return nil
}

func (s *server) getFile(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	fi, err := s.d.node.File(id)
	if err != nil {
		return apiError(err)
	}
	longTransfer(w)
	lw := &lazyHeader{w: w, set: func(h http.Header) {
		h.Set("Content-Type", api.ContentTypeOctets)
		h.Set("Content-Length", strconv.FormatUint(fi.Size, 10))
		h.Set(api.HeaderFileSHA256, fi.SHA256)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fi.Name}))
		h.Set("Cache-Control", "no-store")
	}}
	if _, err := s.d.node.OpenFile(id, lw); err != nil {
		if lw.wrote {
			// Bytes already went out: the client's own check of the
			// length and hash fails, and the connection ends here.
			panic(http.ErrAbortHandler)
		}
		return apiError(err)
	}
	if !lw.wrote {
		lw.set(w.Header())
		w.WriteHeader(http.StatusOK) // an empty file
	}
	return nil
}

// lazyHeader sets the response headers at the first byte written, so an
// error found before it can still be answered as JSON.
type lazyHeader struct {
	w     http.ResponseWriter
	set   func(http.Header)
	wrote bool
}

func (l *lazyHeader) Write(b []byte) (int, error) {
	if !l.wrote {
		l.wrote = true
		l.set(l.w.Header())
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(b)
}

func apiFileInfo(f *node.FileInfo) *api.FileInfo {
	if f == nil {
		return nil
	}
	return &api.FileInfo{Name: f.Name, MediaType: f.MediaType, Size: f.Size, SHA256: f.SHA256}
}
