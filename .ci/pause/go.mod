module devmesh.local/pause

go 1.26
