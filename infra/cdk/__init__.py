"""The AWS CDK app: `app.py` builds the stacks, `synth.py` synthesises them offline."""
