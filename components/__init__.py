"""KFP components: thin adapters from typed KFP inputs/outputs to one ``sagestack`` call each."""
