from codequal.cli import main

main()
