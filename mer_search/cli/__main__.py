from mer_search.cli import main

main()
