"""The 3D scene: VTK volume rendering, label surfaces, cursor and camera, built from core data classes.

Nothing here imports Qt; ``viewer/qt`` embeds :class:`~viewer.render3d.scene.Scene3D`'s renderer in a
widget. World coordinates are DICOM LPS millimetres, the same as the 2D views. Import the submodules
directly (``from viewer.render3d.scene import Scene3D``): this package module imports no VTK itself.
"""
