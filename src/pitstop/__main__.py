from pitstop.cli import main

main()
