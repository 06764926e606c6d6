module github.com/crieur/crieur/interop/gotosocial

go 1.24
