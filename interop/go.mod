module scaiwave-auth/interop

go 1.26.0
