from market.cli import main

main()
