from durahub.cli import main

main()
