//go:build unix

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// checkPrivateFiles fails the test unless each path exists with mode 0600.
func checkPrivateFiles(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat %s: %v", filepath.Base(p), err)
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v; want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}
}

// TestDatabaseFilesArePrivate: the database the service creates, its -wal
// and -shm files, and a backup made with the admin command are mode 0600,
// not the 0644 SQLite would use; a database that exists keeps its mode.
func TestDatabaseFilesArePrivate(t *testing.T) {
	t.Parallel()
	f := newFakeIDP(t)
	a := newTestApp(t, []tenantConfig{f.tenantConfig()})
	checkRegister(t, "a first participant", a.register(f.accessToken()), 200)
	checkPrivateFiles(t, a.dbPath, a.dbPath+"-wal", a.dbPath+"-shm")

	backup := filepath.Join(t.TempDir(), "backup.db")
	if out, stderr, err := runCmd("backup", "-db", a.dbPath, backup); err != nil {
		t.Fatalf("backup: %v %s %s", err, out, stderr)
	}
	checkPrivateFiles(t, backup)

	// An operator's own mode on an existing database is left alone.
	shared := filepath.Join(t.TempDir(), "shared.db")
	s := openTestStore(t, shared)
	s.Close()
	if err := os.Chmod(shared, 0o640); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, shared)
	defer s.Close()
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("an existing 0640 database after openStore: %v, %v; want its mode kept", fi.Mode().Perm(), err)
	}
}

// TestDatabaseFilesArePrivateUnderUmask runs the store in a child process
// whose umask takes the owner's write bit (so a mode given to open is not
// the mode the file gets) and one whose umask takes nothing: both get 0600
// files that work.
func TestDatabaseFilesArePrivateUnderUmask(t *testing.T) {
	t.Parallel()
	for _, mask := range []int{0o277, 0o000} {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperPrivateFilesChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SCAIWAVE_TEST_UMASK="+strconv.Itoa(mask), "SCAIWAVE_TEST_DIR="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("store under umask %04o: %v\n%s", mask, err, out)
		}
	}
}

// TestHelperPrivateFilesChild is TestDatabaseFilesArePrivateUnderUmask's
// child; it does nothing unless started by it.
func TestHelperPrivateFilesChild(t *testing.T) {
	mask, err := strconv.Atoi(os.Getenv("SCAIWAVE_TEST_UMASK"))
	dir := os.Getenv("SCAIWAVE_TEST_DIR")
	if err != nil || dir == "" {
		t.Skip("run by TestDatabaseFilesArePrivateUnderUmask")
	}
	syscall.Umask(mask) // this process only: it runs no other test
	ctx := context.Background()
	path := filepath.Join(dir, "auth.db")
	s := openTestStore(t, path)
	defer s.Close()
	if _, err := s.ensureParticipant(ctx, testPrincipal("umask"), "Umask", ""); err != nil {
		t.Fatalf("ensureParticipant: %v", err)
	}
	checkPrivateFiles(t, path, path+"-wal", path+"-shm")
	backup := filepath.Join(dir, "backup.db")
	if err := s.backup(ctx, backup); err != nil {
		t.Fatalf("backup: %v", err)
	}
	checkPrivateFiles(t, backup)
}
