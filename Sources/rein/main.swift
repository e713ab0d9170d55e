import ReinCLI

// The executable only hands over to the command-line library.
await Rein.main()
