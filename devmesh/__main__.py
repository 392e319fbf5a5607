from devmesh.cli import main

main()
