"""The competition's score: InceptionV3 features (`inception`), FID, the memorization distance
and MiFID (`metrics`), the score during training (`mifid_callback`) and `monet-tf fid`
(`fid`), on either backend.

May import runtime/ and data/; not models/, inference/ or training/.
"""
