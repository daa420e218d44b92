"""Command components, declared in components/ or beside the jobs that run them.

A component is no resource of its own: a pipeline step runs one (`component: ./train.yml`
or `component: azureml:train:1`), and the step's digest covers the component's content.

    spec       ComponentSpec, its parsing and the checks of its own file; input values
               checked against their declarations; Azure's optional arguments (`$[[…]]`)
    declaring  how component files are read (`Declaring`)
"""

from mlform.kinds.component.declaring import DECLARING

__all__ = ["DECLARING"]
