package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/meshnode/meshnode/api"
)

// Files (issue 18): send --file PATH, download ID [--out PATH].

func sendFile(cmd *cobra.Command, g *globals, group, path string, asJSON bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	mt := mime.TypeByExtension(filepath.Ext(path))
	if mt == "" {
		head := make([]byte, 512)
		n, _ := io.ReadFull(f, head)
		mt = http.DetectContentType(head[:n])
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	fmt.Fprintf(g.stderr, "Sending %s (%s, %d bytes)...\n", filepath.Base(path), mt, st.Size())
	var res *api.SendResult
	if err := g.call(func(c *api.Client) (err error) {
		res, err = c.SendFile(cmd.Context(), group, filepath.Base(path), mt, f, st.Size())
		return err
	}); err != nil {
		return err
	}
	warnDelivery(g, res)
	if asJSON {
		return printJSON(g.stdout, res)
	}
	return printFields(g.stdout, [][2]string{{"id", res.ID}, {"state", res.State}, {"stored_by", storedBy(res)}})
}

func newDownloadCmd(g *globals) *cobra.Command {
	var (
		out   string
		force bool
	)
	cmd := &cobra.Command{
		Use:   "download MSG_ID [--out PATH]",
		Short: "Download a file sent to one of your groups, checking it against its SHA-256",
		Long: "Fetch the chunks of the file message MSG_ID (its start suffices) that this node lacks\n" +
			"from the group's hosts, check the whole file against the SHA-256 its sender signed, and\n" +
			"write it to --out (default: its name, in the current directory). An interrupted download\n" +
			"goes on where it stopped; nothing is written under the final name unless it checks out.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.call(func(c *api.Client) error {
				s, err := c.Download(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				defer s.Close()
				var last api.DownloadProgress
				for {
					p, err := s.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						fmt.Fprintln(g.stderr)
						return err
					}
					last = p
					fmt.Fprintf(g.stderr, "\rchunks held: %d of %d", p.Held, p.Chunks)
				}
				fmt.Fprintln(g.stderr)
				if !last.Done || last.File == nil {
					return errors.New("the daemon ended the download without finishing it")
				}
				dest := out
				if dest == "" {
					dest = filepath.Base(last.File.Name)
					if dest == "." || dest == ".." || dest == string(filepath.Separator) {
						dest = "download"
					}
				}
				if _, err := os.Stat(dest); err == nil && !force {
					return fmt.Errorf("%s exists; choose another --out or pass --force", dest)
				}
				return writeFile(cmd, c, last.ID, dest, last.File, g)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the file (default: its name, in the current directory)")
	cmd.Flags().BoolVar(&force, "force", false, "replace --out if it exists")
	return cmd
}

// writeFile writes the verified file to dest by way of dest.part, and
// renames it only once its length and SHA-256 match the manifest.
func writeFile(cmd *cobra.Command, c *api.Client, id, dest string, fi *api.FileInfo, g *globals) error {
	body, _, sum, err := c.OpenFile(cmd.Context(), id)
	if err != nil {
		return err
	}
	defer body.Close()
	if sum != fi.SHA256 {
		return fmt.Errorf("the daemon answered another file (hash %s, want %s)", sum, fi.SHA256)
	}
	part := dest + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && (uint64(n) != fi.Size || hex.EncodeToString(h.Sum(nil)) != fi.SHA256) {
		err = fmt.Errorf("the file arrived with %d of %d bytes or another hash: not kept", n, fi.Size)
	}
	if err != nil {
		os.Remove(part)
		return err
	}
	if err := os.Rename(part, dest); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "Saved %s (%d bytes, SHA-256 %s)\n", dest, fi.Size, fi.SHA256)
	return nil
}
