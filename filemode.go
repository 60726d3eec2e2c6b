package main

// The database holds who signed in (names, emails, subjects): its files and
// backups are the service's alone, mode 0600, whatever the umask.

import (
	"errors"
	"io/fs"
	"os"
)

// privateFileMode is the mode of every file the store creates.
const privateFileMode fs.FileMode = 0o600

// createPrivateFile creates the empty file path, which must not exist,
// with mode 0600 whatever the process's umask (which may have taken
// bits from the mode given to open). An existing path is fs.ErrExist.
func createPrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, privateFileMode)
	if err != nil {
		return err
	}
	err = f.Chmod(privateFileMode)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// createDatabaseFile creates the database file at path with mode 0600
// when there is none, before SQLite opens it: SQLite makes its -wal and
// -shm files with the database file's mode, and would make a new database
// 0644 less the umask. It reports whether it created the file; an
// existing file keeps the mode its operator gave it.
func createDatabaseFile(path string) (bool, error) {
	err := createPrivateFile(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	}
	return false, err
}

// restrictSidecars sets the -wal and -shm files of a database this process
// created to mode 0600, should SQLite have made them otherwise.
func restrictSidecars(path string) error {
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, privateFileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
